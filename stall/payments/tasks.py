"""The payments app's periodic tasks. Tasks queued by a service live beside the service that
queues them (``stripe_services.stripe_duplicate_refund``, ``stripe_card_attach``), so the service
needs no import of this module, which imports it."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from . import lightning_services, services, stripe_services


@db_periodic_task(crontab(minute="*/10"))
def stripe_payments_reconcile_task():
    """Every ten minutes, ask Stripe about payments and refunds whose outcome never reached us
    (a lost webhook, a browser that never came back, a network failure mid-call)."""
    return stripe_services.stripe_payments_reconcile()


@db_periodic_task(crontab(minute="*/2"))
def payments_reconcile_task():
    """Every two minutes, finish card payments that a crash left processing, by asking their rail
    (the sandbox's; Stripe's have the task above, the wallet and the tab never leave one)."""
    return services.payments_reconcile()


@db_periodic_task(crontab(minute="*"))
def lightning_payments_reconcile_task():
    """Every minute, ask LNbits about Lightning invoices still waiting: one paid while its page was
    closed and its webhook lost, or one that expired unpaid."""
    return lightning_services.lightning_payments_reconcile()


@db_periodic_task(crontab(minute="*/5"))
def checkouts_expire():
    """Every five minutes, close checkouts that were abandoned past their expiry (and cancel the
    payments still waiting for the buyer's bank)."""
    return services.checkouts_expire_due()

"""Finding out what we missed: the periodic reconciliation, and a second success for one checkout."""

import datetime

from django.utils import timezone

from stall.checkout.models import CheckoutStatus
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.models import Payment, PaymentStatus
from stall.payments.stripe_services import stripe_payments_reconcile
from stall.payments.tasks import stripe_payments_reconcile_task

from .conftest import THREE_D_SECURE, VISA, intent_event, open_checkout, signed_delivery


def _age(payment, minutes):
    Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now() - datetime.timedelta(minutes=minutes))


def test_reconciliation_completes_a_payment_whose_buyer_and_webhook_never_came_back(stripe_store, card, client, buyer_browser):
    """A 3-D Secure payment the buyer passed at the bank, with no return and no webhook, is
    completed once it is older than the threshold; a younger one is left for later."""
    checkout = checkout_confirm(checkout_id=open_checkout(stripe_store).pk, payment_method=card(THREE_D_SECURE))
    payment = Payment.objects.get(checkout=checkout)
    secret = client.get(f"/checkout/{checkout.pk}/").context["client_secret"]
    buyer_browser.authenticate(payment.rail_reference, secret, success=True)

    assert stripe_payments_reconcile() == 0  # younger than STRIPE_RECONCILE_AFTER_MINUTES
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.REQUIRES_ACTION

    _age(payment, 16)
    assert stripe_payments_reconcile() == 1

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(payment=payment).checkout.status == CheckoutStatus.COMPLETE


def test_a_payment_still_awaiting_the_buyer_is_asked_about_again_later(stripe_store, client):
    """An intent nobody paid yet stays open; it is not asked about again until another period passes."""
    checkout = open_checkout(stripe_store)
    client.get(f"/checkout/{checkout.pk}/")
    payment = Payment.objects.get(checkout=checkout)
    _age(payment, 30)

    assert stripe_payments_reconcile() == 0

    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    assert timezone.now() - payment.updated_at < datetime.timedelta(minutes=1)


def test_the_reconciliation_task_runs_every_ten_minutes(stripe_store, card, client, buyer_browser):
    """The periodic task is scheduled at every tenth minute and settles what is due."""
    checkout = checkout_confirm(checkout_id=open_checkout(stripe_store).pk, payment_method=card(THREE_D_SECURE))
    payment = Payment.objects.get(checkout=checkout)
    buyer_browser.authenticate(payment.rail_reference, client.get(f"/checkout/{checkout.pk}/").context["client_secret"], success=True)
    _age(payment, 60)

    assert [stripe_payments_reconcile_task.task_class().validate_datetime(datetime.datetime(2030, 1, 1, 9, m)) for m in (0, 10, 15, 50)] == [True, True, False, True]
    stripe_payments_reconcile_task()

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


def test_a_second_success_for_a_paid_checkout_is_refunded_not_kept(
    stripe_store, client, buyer_browser, localstripe_client, django_capture_on_commit_callbacks
):
    """The buyer paid two intents of one checkout (two tabs, after a failure we were told about):
    the first success makes the order, the second is refunded in full at Stripe."""
    checkout = open_checkout(stripe_store)
    client.get(f"/checkout/{checkout.pk}/")
    first = Payment.objects.get(checkout=checkout)
    buyer_browser.pay(first.rail_reference, VISA)
    paid_first = localstripe_client.v1.payment_intents.retrieve(first.rail_reference).to_dict()
    url = f"/webhooks/stripe/{stripe_store.pk}"
    stale_failure = {**paid_first, "status": "requires_payment_method", "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}}
    body, header = signed_delivery(intent_event("evt_stale_fail", "payment_intent.payment_failed", stale_failure))
    client.post(url, data=body, content_type="application/json", headers={"Stripe-Signature": header})
    assert Payment.objects.get(pk=first.pk).status == PaymentStatus.FAILED

    client.get(f"/checkout/{checkout.pk}/")  # the other tab: a new attempt
    second = Payment.objects.exclude(pk=first.pk).get(checkout=checkout)
    buyer_browser.pay(second.rail_reference, VISA)
    assert client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": second.rail_reference}).url.endswith("/complete/")

    body, header = signed_delivery(intent_event("evt_first_paid", "payment_intent.succeeded", paid_first))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, data=body, content_type="application/json", headers={"Stripe-Signature": header})

    assert response.status_code == 200
    first.refresh_from_db()
    assert (first.status, first.failure_code) == (PaymentStatus.CANCELED, "duplicate_refunded")
    assert Order.objects.get(checkout=checkout).payment_id == second.pk
    refunds = localstripe_client.v1.refunds.list(params={"payment_intent": first.rail_reference}).to_dict()["data"]
    assert [(r["amount"], r["status"]) for r in refunds] == [(300, "succeeded")]


def test_a_late_success_of_a_failed_attempt_wins_over_an_unpaid_newer_one(stripe_store, client, buyer_browser, localstripe_client):
    """A payment we had marked failed whose intent then succeeded completes the checkout; the
    newer, unpaid attempt is withdrawn so the checkout keeps one live payment."""
    checkout = open_checkout(stripe_store)
    client.get(f"/checkout/{checkout.pk}/")
    first = Payment.objects.get(checkout=checkout)
    buyer_browser.pay(first.rail_reference, VISA)
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.FAILED, failure_code="card_declined")
    client.get(f"/checkout/{checkout.pk}/")
    newer = Payment.objects.exclude(pk=first.pk).get(checkout=checkout)

    response = client.get(f"/checkout/{checkout.pk}/stripe/return/", {"payment_intent": first.rail_reference})

    assert response.url == f"/checkout/{checkout.pk}/complete/"
    assert Payment.objects.get(pk=first.pk).status == PaymentStatus.SUCCEEDED
    newer.refresh_from_db()
    assert (newer.status, newer.failure_code) == (PaymentStatus.CANCELED, "superseded")

"""Background work for wallets and tabs: automatic top-ups, overdue tabs, and the emails about them
(in the language recorded on the wallet or the tab: ``Wallet.language``, ``Tab.language``)."""

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from stall.accounts.services import buyer_magic_link
from stall.core.email import email_send
from stall.core.languages import language_for
from stall.core.money import format_money

from . import selectors, services
from .models import GiftCard, GiftCardEvent, GiftCardStatus, Tab, Wallet


@db_task()
def wallet_auto_top_up_task(wallet_id: str, trigger: str | None = None):
    """Queued after a spend left the wallet below its threshold; tops up at most once per trigger.

    No retries: a failure is recorded and the buyer told, and a dead card is not charged again."""
    auto = services.wallet_auto_top_up(wallet_id=wallet_id, trigger=trigger)
    return auto.pk if auto is not None else None


@db_periodic_task(crontab(minute="*/15"))
def wallets_auto_top_up_sweep_task():
    """Every quarter hour, top up wallets below their threshold whose task never ran."""
    return services.wallets_auto_top_up_sweep()


@db_periodic_task(crontab(minute="7"))
def tabs_settle_overdue_task():
    """Every hour, settle tabs open longer than STALL_TAB_SETTLE_AFTER_DAYS with a saved card."""
    return services.tabs_settle_overdue()


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def auto_top_up_failed_notice(wallet_id: str) -> None:
    """Tell the buyer their automatic top-up failed and is paused."""
    wallet = Wallet.objects.select_related("buyer").get(pk=wallet_id)
    # In the language of the page where the buyer turned automatic top-up on (or opened the wallet).
    with translation.override(language_for(wallet.language)):
        email_send(
            to=wallet.buyer.email,
            subject=_("Your wallet was not topped up"),
            template="wallets/email/auto_top_up_failed",
            context={
                "wallet": wallet,
                "amount": format_money(wallet.auto_top_up_amount or 0, wallet.currency),
                "reason": wallet.auto_top_up_failure,
                "wallet_url": buyer_magic_link(email=wallet.buyer.email, next_path=f"/wallet/?currency={wallet.currency}"),
            },
        )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def tab_overdue_notice(tab_id: str) -> None:
    """Tell the buyer their tab is overdue and takes no more purchases until settled."""
    tab = Tab.objects.select_related("buyer", "account").get(pk=tab_id)
    # In the language of the page of the purchase that opened the tab.
    with translation.override(language_for(tab.language)):
        email_send(
            to=tab.buyer.email,
            subject=_("Please settle your tab"),
            template="wallets/email/tab_overdue",
            context={
                "tab": tab,
                "owed": format_money(selectors.tab_owed(tab=tab), tab.currency),
                "blocked": settings.STALL_TAB_BLOCK_WHEN_OVERDUE,
                "tab_url": buyer_magic_link(email=tab.buyer.email, next_path=f"/wallet/tab/?currency={tab.currency}"),
            },
        )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def gift_card_email_send(card_id: str) -> None:
    """Email a gift card's code to its recipient, with the sender's message; queued at issue, or
    scheduled for the send date the buyer chose. Sent once: the code is then forgotten (only its
    hash stays), so a retried or repeated task finds nothing to send."""
    card = GiftCard.objects.select_related("store", "order__checkout").get(pk=card_id)
    if card.emailed_at is not None or not card.pending_code or card.status != GiftCardStatus.ACTIVE:
        return
    store = card.store
    # In the language the giver bought it in (the checkout's); a card the creator issued: English.
    checkout = card.order.checkout if card.order_id and card.order.checkout_id else None
    with translation.override(language_for(checkout.language if checkout else "")):
        amount = format_money(card.initial_amount, card.currency)
        email_send(
            to=card.recipient_email,
            subject=_("A %(amount)s gift card for %(store)s") % {"amount": amount, "store": store.name},
            template="wallets/email/gift_card",
            context={
                "card": card, "store": store, "code": card.pending_code, "amount": amount,
                "redeem_url": buyer_magic_link(email=card.recipient_email, next_path=f"/s/{store.slug}/redeem/"),
            },
            reply_to=store.support_email or None,
        )
    now = timezone.now()
    GiftCard.objects.filter(pk=card.pk, emailed_at__isnull=True).update(emailed_at=now, pending_code="")
    GiftCardEvent.objects.create(card=card, kind="emailed", note=f"to {card.recipient_email}")

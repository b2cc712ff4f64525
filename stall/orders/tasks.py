from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from huey.contrib.djhuey import db_task

from stall.accounts.services import buyer_magic_link
from stall.catalog.names import product_name_shown
from stall.core.email import email_send
from stall.core.money import format_money
from stall.payments.models import Refund

from .models import Order
from .selectors import Receipt, receipt_read


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def receipt_send(order_id: str) -> None:
    """Email the buyer a receipt with a link to their library, in the language they bought in."""
    receipt = receipt_read(order_id=order_id)
    with translation.override(receipt.language or settings.LANGUAGE_CODE):
        _receipt_send(receipt)


def _receipt_send(receipt: Receipt) -> None:
    currency = receipt.currency
    discount = sum(line[3] for line in receipt.lines)
    email_send(
        to=receipt.email,
        subject=_("Your receipt from %(store)s") % {"store": receipt.store_name},
        template="orders/email/receipt",
        context={
            "order": {"id": receipt.order_id},
            "store": {"name": receipt.store_name},
            "lines": [(product_name_shown(name), qty, format_money(unit * qty, currency)) for name, qty, unit, _ in receipt.lines],
            "total": format_money(receipt.amount_total, currency),
            "discount": format_money(discount, currency) if discount else "",
            "discount_code": receipt.discount_code,
            "library_url": buyer_magic_link(email=receipt.email),
            "license_keys": receipt.license_keys,
        },
        reply_to=receipt.support_email or None,
    )


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def refund_notice_send(refund_id: str) -> None:
    """Tell the buyer that money came back to them, and whether the download was withdrawn."""
    refund = Refund.objects.select_related("order__checkout", "store").get(pk=refund_id)
    order = refund.order
    language = (order.checkout.language if order.checkout else "") or settings.LANGUAGE_CODE
    with translation.override(language):
        _refund_notice_send(refund, order)


def _refund_notice_send(refund: Refund, order: Order) -> None:
    email_send(
        to=order.email,
        subject=_("Refund from %(store)s") % {"store": refund.store.name},
        template="orders/email/refund",
        context={
            "order": order,
            "store": refund.store,
            "amount": format_money(refund.amount, refund.currency),
            "full": order.amount_refunded == order.amount_total,
            "to_wallet": refund.to_wallet,
            "library_url": buyer_magic_link(email=order.email),
        },
        reply_to=refund.store.support_email or None,
    )


@db_task()
def library_link_send(email: str, next_path: str = "", language: str = settings.LANGUAGE_CODE) -> None:
    """Email a sign-in link to the buyer's library and wallet, bringing them back to ``next_path``,
    in the language of the page they asked from."""
    with translation.override(language):
        email_send(
            to=email,
            subject=_("Your library"),
            template="orders/email/library_link",
            context={"library_url": buyer_magic_link(email=email, next_path=next_path)},
        )

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from stall.audience.models import Customer
from stall.catalog.models import ProductFile, ProductKind
from stall.checkout.models import Checkout, CheckoutStatus

from .errors import DownloadLimitReached, DownloadLinkExpired, DownloadLinkInvalid, DownloadRevoked
from .models import DownloadCount, Entitlement, Order, OrderLine

_DOWNLOAD_SALT = "stall.orders.download"

# What else a paid order does for the kinds of product other apps own (a post unlock, a tip):
# handler(order=, lines=) runs inside order_create_for_checkout's transaction, on every rail.
ORDER_PAID_HANDLERS: list = []


def order_paid_handler_register(handler) -> None:
    if handler not in ORDER_PAID_HANDLERS:
        ORDER_PAID_HANDLERS.append(handler)


def customer_for_email(*, store_id: str, email: str) -> Customer:
    """The store's customer with this email, matched without regard to case ("Reader@" is "reader@")."""
    customer = Customer.objects.filter(store_id=store_id, email__iexact=email).first()
    if customer is None:
        customer, _ = Customer.objects.get_or_create(store_id=store_id, email=email.lower())
    return customer


def order_create_for_checkout(*, checkout: Checkout, payment=None, fee: int = 0, platform_fee: int = 0) -> Order:
    """Turn a locked, open checkout into a paid order with its entitlements. Call inside a transaction."""
    from .tasks import receipt_send

    from stall.accounts.services import buyer_for_email

    customer = customer_for_email(store_id=checkout.store_id, email=checkout.email)
    buyer_for_email(email=checkout.email)  # a buyer's account is created at their first purchase
    order = Order.objects.create(
        store_id=checkout.store_id,
        checkout=checkout,
        payment=payment,
        customer=customer,
        email=checkout.email,
        currency=checkout.currency,
        amount_total=checkout.amount_total,
        fee=fee,
        platform_fee=platform_fee,
    )
    lines = list(checkout.lines.select_related("product"))
    OrderLine.objects.bulk_create(
        [OrderLine(order=order, product_id=l.product_id, name=l.name, unit_amount=l.unit_amount, quantity=l.quantity) for l in lines]
    )
    # An API charge (pay per call) gives nothing to keep; downloads, posts and tips are in the library.
    Entitlement.objects.bulk_create(
        [
            Entitlement(store_id=checkout.store_id, order=order, product_id=l.product_id, email=checkout.email,
                        download_limit=l.product.download_limit)
            for l in lines
            if l.product.kind in ENTITLING_KINDS
        ]
    )
    checkout.status = CheckoutStatus.COMPLETE
    checkout.completed_at = timezone.now()
    checkout.last_error_code = checkout.last_error_message = ""
    checkout.save(update_fields=["status", "completed_at", "last_error_code", "last_error_message"])
    if payment is None or not _paid_in_ledger(payment):
        transaction.on_commit(lambda: receipt_send(order.pk))
    for handler in ORDER_PAID_HANDLERS:
        handler(order=order, lines=lines)
    _event_emit(order, "order.paid")
    return order


def _event_emit(order: Order, type: str) -> None:
    from stall.integrations.webhooks import event_emit

    from .schemas import order_out

    event_emit(store_id=order.store_id, type=type, data={"object": order_out(order)})


ENTITLING_KINDS = (ProductKind.DOWNLOAD, ProductKind.POST, ProductKind.TIP)


def _paid_in_ledger(payment) -> bool:
    """Paid from the wallet or the tab: the wallet's history is the receipt, so a reader unlocking
    twenty 25¢ posts, or an API charging per call, does not get twenty emails."""
    from stall.payments.rails import rail_get

    return getattr(rail_get(payment.rail), "in_ledger", False)


def entitlements_revoke_for_order(*, order: Order) -> int:
    return Entitlement.objects.filter(order=order, revoked_at__isnull=True).update(revoked_at=timezone.now())


def download_token(*, entitlement: Entitlement, file: ProductFile) -> str:
    return signing.dumps({"e": entitlement.pk, "f": file.pk}, salt=_DOWNLOAD_SALT, compress=True)


def download_url(*, entitlement: Entitlement, file: ProductFile) -> str:
    return reverse("orders:download", args=[download_token(entitlement=entitlement, file=file)])


def download_resolve(*, token: str, max_age: int | None = None) -> tuple[Entitlement, ProductFile]:
    """Check a signed download link; return what it grants. Raises on tampering or expiry."""
    max_age = settings.STALL_DOWNLOAD_LINK_TTL_SECONDS if max_age is None else max_age
    try:
        data = signing.loads(token, salt=_DOWNLOAD_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise DownloadLinkExpired() from None
    except signing.BadSignature:
        raise DownloadLinkInvalid() from None
    entitlement = Entitlement.objects.filter(pk=data.get("e")).first()
    file = ProductFile.objects.filter(pk=data.get("f")).first()
    if entitlement is None or file is None or file.product_id != entitlement.product_id:
        raise DownloadLinkInvalid()
    return entitlement, file


@transaction.atomic
def download_register(*, entitlement: Entitlement, file: ProductFile) -> int:
    """Count one download of ``file``; refuse it past the limit or after a refund. Returns the count."""
    entitlement = Entitlement.objects.select_for_update().get(pk=entitlement.pk)
    if entitlement.revoked_at is not None:
        raise DownloadRevoked()
    counter, _ = DownloadCount.objects.get_or_create(entitlement=entitlement, file=file)
    # A conditional increment: two downloads racing for the last slot cannot both win.
    changed = DownloadCount.objects.filter(pk=counter.pk, count__lt=entitlement.download_limit).update(
        count=F("count") + 1, last_downloaded_at=timezone.now()
    )
    if not changed:
        raise DownloadLimitReached()
    return counter.count + 1

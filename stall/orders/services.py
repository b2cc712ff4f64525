"""Orders: a paid checkout becomes an order with its lines and entitlements, the money moves from
the rail's clearing account to the store, and the product kinds' fulfilment runs. Downloads are
counted against the entitlement's limit through signed, expiring links.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from stall.accounts.models import Buyer, Customer
from stall.catalog.models import BundleItem, Product, ProductFile, ProductKind
from stall.checkout.models import Checkout, CheckoutLine, CheckoutStatus
from stall.core.money import amount_validate
from stall.core.rows import PrefetchedRows, model_columns, model_from_row, model_insert
from stall.integrations.webhooks import ENDPOINTS_ENABLED_SQL, EventRow, events_record
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import Posting, account_id_for, transfers_post
from stall.payments.rails import rail_get
from stall.payments.services import platform_fee_for, rail_fee_account_id

from .errors import DownloadLimitReached, DownloadLinkExpired, DownloadLinkInvalid, DownloadRevoked
from .fulfilment import fulfil, order_paid_observers, order_paid_postings
from .licenses import license_keys_for_lines
from .models import DownloadCount, Entitlement, LicensePolicy, Order, OrderLine
from .schemas import order_out
from .tasks import receipt_send

logger = logging.getLogger(__name__)

_DOWNLOAD_SALT = "stall.orders.download"

# An API charge (pay per call) gives nothing to keep; downloads, posts and tips are in the library.
ENTITLING_KINDS = (ProductKind.DOWNLOAD, ProductKind.POST, ProductKind.TIP)


def customer_for_email(*, store_id: str, email: str) -> Customer:
    """The store's customer with this email, matched without regard to case ("Reader@" is "reader@")."""
    customer, _ = Customer.objects.get_or_create(
        store_id=store_id, email__iexact=email, defaults={"email": email.lower()}
    )
    return customer


@dataclass(frozen=True)
class OrderRead:
    """What a checkout's order needs to know before it is written, read in one SELECT inside its
    transaction: the store's customer and the buyer of the email (None when new), whether the store
    has an enabled webhook endpoint, and the order-paid observers' columns (orders.fulfilment)."""

    customer_id: str | None
    buyer_id: str | None
    endpoints: bool
    observed: list


def order_read(*, store_id: str, email: str) -> OrderRead:
    """One statement in place of a lookup each: the customer (matched without regard to case, as
    ``customer_for_email`` does), the buyer, the endpoints and what the observers read."""
    observers = order_paid_observers()
    if connection.vendor == "postgresql":
        customer_match, customer_email = "UPPER(c.email::text) = UPPER(%s)", email
    else:
        customer_match, customer_email = "c.email LIKE %s ESCAPE '\\'", connection.ops.prep_for_like_query(email)
    sql = (
        f"SELECT (SELECT c.id FROM {Customer._meta.db_table} c WHERE c.store_id = %s AND {customer_match} ORDER BY c.id LIMIT 1), "
        f"(SELECT b.id FROM {Buyer._meta.db_table} b WHERE b.email = %s), {ENDPOINTS_ENABLED_SQL}"
        + "".join(f", {o.read_sql}" for o in observers)
    )
    params = [store_id, customer_email, email.strip().lower(), store_id] + [store_id for o in observers if "%s" in o.read_sql]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return OrderRead(customer_id=row[0], buyer_id=row[1], endpoints=bool(row[2]), observed=list(row[3:]))


def _customer_id_make(*, store_id: str, email: str) -> str:
    """A new customer's id, written with one INSERT; one made meanwhile by a concurrent order (the
    INSERT writes nothing) is found as ``customer_for_email`` finds it."""
    customer_id = Customer._meta.pk.get_default()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Customer._meta.db_table} (id, store_id, email, name, created_at) VALUES (%s, %s, %s, '', %s) "
            "ON CONFLICT DO NOTHING",
            [customer_id, store_id, email.lower(), now],
        )
        if cursor.rowcount == 1:
            return customer_id
    return customer_for_email(store_id=store_id, email=email).pk


def _buyer_make(*, email: str) -> None:
    """A buyer's account for a first purchase, unless one exists (a concurrent purchase made it)."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Buyer._meta.db_table} (id, email, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [Buyer._meta.pk.get_default(), email.strip().lower(), now],
        )


def order_create_for_checkout(
    *, checkout: Checkout, payment=None, fee: int = 0, platform_fee: int = 0, read: OrderRead | None = None,
) -> Order:
    """Turn a locked, open checkout into a paid order with its entitlements. Call inside a transaction.
    ``read``: ``order_read`` of the checkout's store and email, when the caller has it."""
    if read is None:
        read = order_read(store_id=checkout.store_id, email=checkout.email)
    customer_id = read.customer_id or _customer_id_make(store_id=checkout.store_id, email=checkout.email)
    if read.buyer_id is None:
        _buyer_make(email=checkout.email)  # a buyer's account is created at their first purchase
    now = timezone.now()
    (order,) = model_insert(Order, [{
        "store_id": checkout.store_id, "checkout_id": checkout.pk, "payment_id": payment.pk if payment is not None else None,
        "customer_id": customer_id, "email": checkout.email, "currency": checkout.currency,
        "amount_total": checkout.amount_total, "fee": fee, "platform_fee": platform_fee,
        "livemode": payment is None or payment.livemode,
    }], now=now)
    Order.checkout.field.set_cached_value(order, checkout)
    Order.checkout.field.remote_field.set_cached_value(checkout, order)  # checkout.order, with no query
    if payment is not None:
        Order.payment.field.set_cached_value(order, payment)
        Order.payment.field.remote_field.set_cached_value(payment, order)
    lines = checkout_lines_with_products(checkout=checkout)
    # The checkout holds its lines and (by the one-to-one) its order: its API answer reads neither again.
    checkout._prefetched_objects_cache = PrefetchedRows(
        checkout, {"lines": lines}, known=getattr(checkout, "_prefetched_objects_cache", None),
    )
    order_lines = model_insert(OrderLine, [
        {"order_id": order.pk, "product_id": ln.product_id, "name": ln.name, "unit_amount": ln.unit_amount,
         "quantity": ln.quantity, "amount_discount": ln.amount_discount}
        for ln in lines
    ])
    for order_line in order_lines:
        OrderLine.order.field.set_cached_value(order_line, order)
    order._prefetched_objects_cache = PrefetchedRows(order, {"lines": order_lines})
    entitlements = [
        {"store_id": checkout.store_id, "order_id": order.pk, "line_id": order_line.pk, "product_id": ln.product_id,
         "email": checkout.email, "download_limit": ln.product.download_limit, "revoked_at": None}
        for ln, order_line in zip(lines, order_lines, strict=True)
        if ln.product.kind in ENTITLING_KINDS
    ]
    entitlements += _bundle_entitlements(order=order, lines=lines, order_lines=order_lines)
    if entitlements:
        model_insert(Entitlement, entitlements, now=now)
    checkout.status = CheckoutStatus.COMPLETE
    checkout.completed_at = now
    checkout.last_error_code = checkout.last_error_message = ""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE checkout_checkout SET status = %s, completed_at = %s, last_error_code = '', last_error_message = '' "
            "WHERE id = %s",
            [checkout.status, connection.ops.adapt_datetimefield_value(now), checkout.pk],
        )
    if payment is None or not rail_get(payment.rail).in_ledger:
        # Paid from the wallet or the tab, the wallet's history is the receipt: a reader unlocking
        # twenty 25¢ posts, or an API charging per call, does not get twenty emails.
        transaction.on_commit(lambda: receipt_send(order.pk))
    events = fulfil(order=order, lines=lines) + license_keys_for_lines(order=order, lines=lines)
    events_record(store_id=order.store_id, events=[EventRow("order.paid", order_out(order, lines=order_lines)), *events], endpoints=read.endpoints)
    return order


# A checkout's lines with their products and the products' license policies (NULL when none),
# written out: every paid checkout reads them (stall.core.rows says why).
_LINES_SQL = (
    f"SELECT {model_columns(CheckoutLine, 'l')}, {model_columns(Product, 'p')}, {model_columns(LicensePolicy, 'lp')} "
    "FROM checkout_checkoutline l JOIN catalog_product p ON p.id = l.product_id "
    "LEFT JOIN orders_licensepolicy lp ON lp.product_id = p.id WHERE l.checkout_id = %s ORDER BY l.id"
)


def checkout_lines_with_products(*, checkout: Checkout) -> list[CheckoutLine]:
    """The checkout's lines, each with its product, and the product with its license policy (None
    when it has none), as ``select_related("product", "product__license_policy")`` loads them."""
    with connection.cursor() as cursor:
        cursor.execute(_LINES_SQL, [checkout.pk])
        rows = cursor.fetchall()
    line_width, product_width = len(CheckoutLine._meta.concrete_fields), len(Product._meta.concrete_fields)
    lines = []
    for row in rows:
        line = model_from_row(CheckoutLine, row[:line_width])
        product = model_from_row(Product, row[line_width:line_width + product_width])
        policy_row = row[line_width + product_width:]
        policy = None if policy_row[0] is None else model_from_row(LicensePolicy, policy_row)
        if policy is not None:
            LicensePolicy.product.field.set_cached_value(policy, product)
        LicensePolicy.product.field.remote_field.set_cached_value(product, policy)
        CheckoutLine.product.field.set_cached_value(line, product)
        CheckoutLine.checkout.field.set_cached_value(line, checkout)
        lines.append(line)
    return lines


def _bundle_entitlements(*, order: Order, lines, order_lines) -> list[dict]:
    """A bundle's line grants each of its parts, as if each had been bought (one query, only for
    an order with a bundle in it): the entitlements' rows, for ``model_insert``."""
    bundles = {ln.product_id for ln in lines if ln.product.kind == ProductKind.BUNDLE}
    if not bundles:
        return []
    parts: dict[str, list] = {}
    for item in BundleItem.objects.filter(bundle_id__in=bundles).select_related("part").order_by("pk"):
        parts.setdefault(item.bundle_id, []).append(item.part)
    return [
        {"store_id": order.store_id, "order_id": order.pk, "line_id": order_line.pk, "product_id": part.pk,
         "email": order.email, "download_limit": part.download_limit, "revoked_at": None}
        for ln, order_line in zip(lines, order_lines, strict=True)
        for part in parts.get(ln.product_id, [])
    ]


def checkout_payment_succeeded(*, payment) -> Order:
    """A checkout's payment went through (registered for the checkout purpose with payments): the
    order is made and the money moves clearing → store, less the platform's and the rail's fees.
    A test payment's money goes to the store's test balance (``ledger_owner``). Runs inside
    ``payment_succeed``'s transaction."""
    checkout = payment.checkout  # locked, and checked to be still open, by payment_succeed
    fee = payment.fee
    amount_validate(fee, param="fee")
    platform_fee = platform_fee_for(payment.amount)
    read = order_read(store_id=checkout.store_id, email=checkout.email)
    order = order_create_for_checkout(checkout=checkout, payment=payment, fee=fee, platform_fee=platform_fee, read=read)

    currency, livemode = payment.currency, payment.livemode
    store_owner = ledger_owner(checkout.store_id, livemode=livemode)
    balance = account_id_for(kind=AccountKind.STORE_BALANCE, owner=store_owner, currency=currency)
    clearing = account_id_for(kind=AccountKind.PROCESSOR_CLEARING, owner=payment.rail, currency=currency)
    postings = [Posting(f"{payment.pk}:sale", clearing, balance, payment.amount, currency, "sale", order.pk)]
    if platform_fee:
        platform_owner = ledger_owner("platform", livemode=livemode)
        platform = account_id_for(kind=AccountKind.PLATFORM_FEES, owner=platform_owner, currency=currency)
        postings.append(Posting(f"{payment.pk}:platform_fee", balance, platform, platform_fee, currency, "platform_fee", order.pk))
    if fee:
        fees = rail_fee_account_id(payment=payment)
        postings.append(Posting(f"{payment.pk}:processor_fee", balance, fees, fee, currency, "processor_fee", order.pk))
    postings += order_paid_postings(order=order, read=read.observed)
    transfers_post(postings=postings)
    return order


def checkout_payment_replayed(*, payment) -> Order:
    return Order.objects.get(payment=payment)


def entitlements_revoke_for_order(*, order: Order) -> int:
    return Entitlement.objects.filter(order=order, revoked_at__isnull=True).update(revoked_at=timezone.now())


def entitlements_revoke_for_line(*, order: Order, line: OrderLine) -> int:
    """Revoke what one line of the order granted (a line refunded in full)."""
    # The lean spend writes entitlements without their line; those are the line's product's.
    granted = Q(line=line) | Q(line__isnull=True, product_id=line.product_id)
    return Entitlement.objects.filter(granted, order=order, revoked_at__isnull=True).update(revoked_at=timezone.now())


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

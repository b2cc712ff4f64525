from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery

from stall.catalog.models import Product
from stall.checkout.models import Checkout
from stall.ledger.models import AccountKind, Transfer, TransferState
from stall.stores.models import Store

from .errors import OrderNotFound
from .models import DownloadCount, Entitlement, LicenseKey, Order, OrderLine


def orders_for_store(*, store: Store, query: str = "") -> QuerySet[Order]:
    # kind: what was bought (download, post, tip, charge), from the first line; one subquery, no N+1.
    first_kind = OrderLine.objects.filter(order=OuterRef("pk")).order_by("pk").values("product__kind")[:1]
    qs = Order.objects.filter(store=store).annotate(kind=Subquery(first_kind)).order_by("-pk")
    query = (query or "").strip()
    if query:
        qs = qs.filter(Q(pk=query) | Q(email__icontains=query) | Q(customer__name__icontains=query))
    return qs


def order_get(*, store: Store, order_id: str) -> Order:
    order = (
        Order.objects.filter(store=store, pk=order_id)
        .select_related("payment", "customer", "checkout")
        .prefetch_related("lines", "refunds", "entitlements")
        .first()
    )
    if order is None:
        raise OrderNotFound()
    return order


def entitlements_for_email(*, email: str) -> QuerySet[Entitlement]:
    """Everything bought with this email, in every store of this Stall, newest first."""
    return (
        Entitlement.objects.filter(email__iexact=email)
        .select_related("product", "store", "order")
        .prefetch_related("product__files")
        .order_by("-pk")
    )


def downloads_used(*, entitlement: Entitlement) -> dict[str, int]:
    return dict(DownloadCount.objects.filter(entitlement=entitlement).values_list("file_id", "count"))


# What each transfer code moving a store's balance for an order is, on the order: processing fees
# (the card's, a wallet share, a tab settlement's share, and what a refund gave back of them),
# the platform's fee and what it gave back. A sale and a refund are the order's amounts.
FEE_CODES = frozenset({"processor_fee", "tab_settlement_fee", "fee_refund"})
PLATFORM_FEE_CODES = frozenset({"platform_fee", "platform_fee_refund"})
# A chargeback: the amount the processor took back (and gave back when the store won), and its fee.
DISPUTE_CODES = frozenset({"dispute", "dispute_reinstated"})
DISPUTE_FEE_CODES = frozenset({"dispute_fee", "dispute_fee_reinstated"})


@dataclass(frozen=True)
class OrderLedger:
    """An order's figures as the ledger has them, each signed as it moved the store's balance."""

    net: int = 0  # everything: the order's net
    sold: int = 0  # + the sale
    refunded: int = 0  # − refunds
    fee_net: int = 0  # − processing fees, + what refunds gave back of them
    platform_fee_net: int = 0  # − the platform's fee, + what it gave back
    disputed: int = 0  # − what a chargeback took, + what it gave back
    dispute_fee: int = 0  # − the dispute fee, + any returned


def order_ledger_totals(*, orders) -> dict[str, OrderLedger]:
    """The definition of an order's net: what the posted transfers referencing it moved into its
    store's balance (credits − debits on that account), by order id, in one query. The order's
    columns (``Order.net`` and the fees) are kept equal to this; audits and tests compare them."""
    orders = list(orders)
    owners = {order.pk: (order.store_id, order.currency) for order in orders}
    figures = ("net", "sold", "refunded", "fee_net", "platform_fee_net", "disputed", "dispute_fee")
    sums = {order.pk: dict.fromkeys(figures, 0) for order in orders}
    balance = Q(debit_account__kind=AccountKind.STORE_BALANCE) | Q(
        credit_account__kind=AccountKind.STORE_BALANCE
    )
    rows = Transfer.objects.filter(
        balance, reference__in=list(owners), state=TransferState.POSTED
    ).values_list(
        "reference", "code", "amount", "credit_account__kind", "credit_account__owner",
        "debit_account__owner", "currency",
    )
    for reference, code, amount, credit_kind, credit_owner, debit_owner, currency in rows:
        into = credit_kind == AccountKind.STORE_BALANCE
        if (credit_owner if into else debit_owner, currency) != owners[reference]:
            continue  # another store's balance: not this order's (no transfer does this today)
        signed = amount if into else -amount
        totals = sums[reference]
        totals["net"] += signed
        if code == "sale":
            totals["sold"] += signed
        elif code == "refund":
            totals["refunded"] += signed
        elif code in FEE_CODES:
            totals["fee_net"] += signed
        elif code in PLATFORM_FEE_CODES:
            totals["platform_fee_net"] += signed
        elif code in DISPUTE_CODES:
            totals["disputed"] += signed
        elif code in DISPUTE_FEE_CODES:
            totals["dispute_fee"] += signed
    return {order_id: OrderLedger(**totals) for order_id, totals in sums.items()}


@dataclass(frozen=True)
class Receipt:
    """What a receipt email shows of a paid order."""

    order_id: str
    email: str
    currency: str
    amount_total: int
    store_name: str
    support_email: str
    language: str
    discount_code: str
    lines: list[tuple[str, int, int, int]]  # name, quantity, unit amount, discount
    license_keys: list[tuple[str, str]]  # product name, key


_RECEIPT_SQL = (
    "SELECT o.email, o.currency, o.amount_total, s.name, s.support_email, c.language, c.discount_code "
    f"FROM {Order._meta.db_table} o JOIN {Store._meta.db_table} s ON s.id = o.store_id "
    f"LEFT JOIN {Checkout._meta.db_table} c ON c.id = o.checkout_id WHERE o.id = %s"
)
_RECEIPT_LINES_SQL = (
    f"SELECT name, quantity, unit_amount, amount_discount FROM {OrderLine._meta.db_table} WHERE order_id = %s ORDER BY id"
)
_RECEIPT_KEYS_SQL = (
    f"SELECT p.name, k.key FROM {LicenseKey._meta.db_table} k JOIN {Product._meta.db_table} p ON p.id = k.product_id "
    "WHERE k.order_id = %s ORDER BY k.id"
)


def receipt_read(*, order_id: str) -> Receipt:
    """The order's receipt in three indexed reads (a receipt is sent for every order: the task
    worker's main work under a burst of sales). OrderNotFound if there is no such order."""
    with connection.cursor() as cursor:
        cursor.execute(_RECEIPT_SQL, [order_id])
        row = cursor.fetchone()
        if row is None:
            raise OrderNotFound()
        cursor.execute(_RECEIPT_LINES_SQL, [order_id])
        lines = [tuple(line) for line in cursor.fetchall()]
        cursor.execute(_RECEIPT_KEYS_SQL, [order_id])
        keys = [tuple(key) for key in cursor.fetchall()]
    email, currency, total, store_name, support_email, language, discount_code = row
    return Receipt(
        order_id=order_id, email=email, currency=currency, amount_total=total, store_name=store_name,
        support_email=support_email or "", language=language or "", discount_code=discount_code or "",
        lines=lines, license_keys=keys,
    )

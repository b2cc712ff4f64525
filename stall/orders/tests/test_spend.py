"""The lean spend: a one-click purchase from the wallet or the tab in at most ten SQL statements,
with the same rows and ledger results as the general path."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.catalog.models import PriceType
from stall.checkout.models import CheckoutStatus
from stall.checkout.services import CheckoutItem, checkout_create
from stall.content.services import post_create, post_unlock, tip_jar_update, tip_send
from stall.integrations.models import Event, WebhookDelivery, WebhookEndpoint, WebhookEndpointStatus
from stall.ledger.models import Account
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Entitlement, Order
from stall.payments.models import Payment
from stall.testing import ProductFactory
from stall.wallets.allowances import allowance_grant, charge_create
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db

# DESIGN's budget for a one-click spend: the order, its entitlement, the transfers, the balance
# updates and the outbox, in at most ten statements in all.
SPEND_STATEMENTS = 10


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
    assert sum(a.debits_posted for a in Account.objects.all()) == sum(a.credits_posted for a in Account.objects.all())


@pytest.fixture
def reader(db):
    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


class at_most:
    """The statements a spend sends, at most ``limit``. SAVEPOINT and RELEASE are not counted: they
    are how a test's transaction nests the spend's, which outside a test is the BEGIN and COMMIT
    that Django does not report either."""

    def __init__(self, limit: int):
        self.limit = limit
        self.context = CaptureQueriesContext(connection)

    def __enter__(self):
        self.context.__enter__()
        return self

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        if exc[0] is None:
            sent = [q["sql"] for q in self.context.captured_queries if "SAVEPOINT" not in q["sql"]]
            assert len(sent) <= self.limit, f"{len(sent)} statements:\n" + "\n".join(s[:160] for s in sent)
        return False


def _warm(store, reader, capture):
    """The store's first spend opens its balance account and the buyer's customer row, and the
    fixed accounts' ids are remembered once it commits; every test counts a later spend, which is
    what nearly every spend is."""
    post = post_create(store=store, title="Warm-up", amount=25, status="published")
    with capture(execute=True):
        post_unlock(post=post, method="wallet", buyer=reader)


def test_a_wallet_unlock_is_at_most_ten_statements(store, reader, django_capture_on_commit_callbacks):
    """A 25¢ unlock from the wallet: ten statements or fewer, and the post is unlocked once."""
    _warm(store, reader, django_capture_on_commit_callbacks)
    post = post_create(store=store, title="Notes", amount=25, status="published")
    with at_most(SPEND_STATEMENTS):
        unlock = post_unlock(post=post, method="wallet", buyer=reader)
    assert unlock.order.amount_total == 25 and not unlock.already
    order = Order.objects.get(pk=unlock.order.pk)
    assert (order.payment.rail, order.payment.status, order.checkout_id) == ("wallet", "succeeded", None)
    assert Entitlement.objects.filter(order=order, product=post.product, revoked_at__isnull=True).count() == 1
    assert set(Event.objects.filter(store=store).order_by("pk").values_list("type", flat=True)[2:]) == {
        "order.paid", "post.unlocked"}
    assert_ledger_balanced()


def test_a_tab_unlock_is_at_most_ten_statements(store, django_capture_on_commit_callbacks):
    """On the tab: the same budget once the tab is open."""
    buyer = buyer_for_email(email="tab@example.com")
    first = post_create(store=store, title="One", amount=10, status="published")
    with django_capture_on_commit_callbacks(execute=True):
        post_unlock(post=first, method="tab", buyer=buyer)
    post = post_create(store=store, title="Two", amount=10, status="published")
    with at_most(SPEND_STATEMENTS):
        unlock = post_unlock(post=post, method="tab", buyer=buyer)
    assert Order.objects.get(pk=unlock.order.pk).payment.rail == "tab"
    assert_ledger_balanced()


def test_a_wallet_tip_is_at_most_ten_statements(store, reader, django_capture_on_commit_callbacks):
    """A $1 tip from the wallet with a message: ten statements, and the Tip keeps the message."""
    _warm(store, reader, django_capture_on_commit_callbacks)
    jar = tip_jar_update(store=store, enabled=True)
    with at_most(SPEND_STATEMENTS):
        sent = tip_send(store=store, amount=100, method="wallet", buyer=reader, message="Thanks!", jar=jar)
    assert (sent.tip.amount, sent.tip.message, sent.tip.order.amount_total) == (100, "Thanks!", 100)
    assert_ledger_balanced()


def test_a_checkout_paid_from_the_wallet_is_at_most_ten_statements(store, reader, django_capture_on_commit_callbacks):
    """Buying a $3 download with one click from the wallet: the checkout given, ten statements."""
    _warm(store, reader, django_capture_on_commit_callbacks)
    product = ProductFactory(store=store, amount=300)
    checkout = checkout_create(store=store, email=reader.email, items=[CheckoutItem(product_id=product.pk)])
    with at_most(SPEND_STATEMENTS):
        paid = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader, checkout=checkout)
    assert paid.status == CheckoutStatus.COMPLETE
    order = Order.objects.get(checkout=checkout)
    assert (order.amount_total, paid.order.pk) == (300, order.pk)
    assert Entitlement.objects.filter(order=order).count() == 1
    assert_ledger_balanced()


def test_an_allowance_charge_is_at_most_ten_statements(store, reader, django_capture_on_commit_callbacks):
    """An API charge against an allowance, with an idempotency key: ten statements."""
    _warm(store, reader, django_capture_on_commit_callbacks)
    allowance_grant(buyer=reader, store=store, amount=500, period="month")
    customer = Customer.objects.get(store=store, email=reader.email)
    charge_create(store=store, customer_id=customer.pk, amount=5, currency="USD", idempotency_key="warm")
    with at_most(SPEND_STATEMENTS):
        charge = charge_create(store=store, customer_id=customer.pk, amount=7, currency="USD", idempotency_key="k-2")
    assert (charge.amount, charge.order.amount_total, charge.order.lines.get().name) == (7, 7, "API charges")
    assert_ledger_balanced()


def test_a_refused_spend_writes_nothing(store, django_capture_on_commit_callbacks):
    """An empty wallet: WalletEmpty, and no payment, order, event or transfer is left behind."""
    from stall.payments.errors import WalletEmpty

    buyer = buyer_for_email(email="empty@example.com")
    wallet_top_up(buyer=buyer, amount=500, currency="USD", payment_method="sandbox_visa")
    post = post_create(store=store, title="Dear", amount=600, status="published", )
    before = (Payment.objects.count(), Order.objects.count(), Event.objects.count())
    with pytest.raises(WalletEmpty):
        post_unlock(post=post, method="wallet", buyer=buyer, confirmed=True)
    assert (Payment.objects.count(), Order.objects.count(), Event.objects.count()) == before
    assert_ledger_balanced()


def test_the_general_path_is_no_longer_used_for_a_pay_what_you_want_checkout(store, reader):
    """A pay-what-you-want line keeps the buyer's amount and its name on the lean path."""
    product = ProductFactory(store=store, amount=100, price_type=PriceType.PAY_WHAT_YOU_WANT)
    checkout = checkout_create(store=store, email=reader.email, items=[CheckoutItem(product_id=product.pk, amount=250)])
    checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader)
    order = Order.objects.get(checkout=checkout)
    assert [(ln.unit_amount, ln.name) for ln in order.lines.all()] == [(250, product.name)]


def test_a_sandbox_card_checkout_is_at_most_twenty_one_statements(store, django_capture_on_commit_callbacks):
    """Creating a checkout and paying it with sandbox_visa: 21 statements at most across both
    requests' services (the store's earlier sale made its accounts and their ids known; 27 before
    the card path read with its locks what it asks: a payment under way, the sandbox's Stripe
    rows, the order's customer, buyer, endpoints and stall.books' split). One reads the
    checkout's posts, whose prices a membership's cap may have lowered since it was made
    (orders.pricing.checkout_prices_check): none here. One looks for a failed pledge paid through
    this checkout (stall.campaigns' recovery; the lean spend reads that in its first SELECT, the
    card path's observers are not handed its read). This confirm is not handed the checkout,
    so it takes the general path's lock first, as the hosted page does; the API's confirm does
    not (stall/orders/tests/test_card_checkout_api.py counts both requests whole)."""
    product = ProductFactory(store=store, amount=300)
    with django_capture_on_commit_callbacks(execute=True):
        warm = checkout_create(store=store, email="first@example.com", items=[CheckoutItem(product_id=product.pk)])
        checkout_confirm(checkout_id=warm.pk, payment_method="sandbox_visa")
    with at_most(21) as counted:
        checkout = checkout_create(store=store, email="buyer@example.com", items=[CheckoutItem(product_id=product.pk)])
        paid = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert paid.status == CheckoutStatus.COMPLETE
    order = Order.objects.get(checkout=checkout)
    assert (order.amount_total, order.fee, order.payment.rail) == (300, 39, "sandbox")
    assert counted.limit == 21
    assert_ledger_balanced()


def test_a_spend_at_a_store_with_no_webhook_endpoint_queues_no_dispatch(store, reader, django_capture_on_commit_callbacks):
    """No enabled endpoint (none, or only a disabled one): the spend's events are recorded as
    dispatched and no task follows the commit. With an enabled endpoint they wait for the
    dispatch task, which makes the endpoint's delivery."""
    endpoint = WebhookEndpoint.objects.create(
        store=store, url="https://hooks.example.com/stall", enabled_events=["*"], secret="whsec_test",
        status=WebhookEndpointStatus.DISABLED,
    )
    first = post_create(store=store, title="One", amount=25, status="published")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        unlock = post_unlock(post=first, method="wallet", buyer=reader)
    events = Event.objects.filter(data__object__id=unlock.order.pk)
    assert _dispatches(callbacks) == [] and events.count() == 1 and events.get().dispatched_at is not None

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(status=WebhookEndpointStatus.ENABLED)
    second = post_create(store=store, title="Two", amount=25, status="published")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        unlock = post_unlock(post=second, method="wallet", buyer=reader)
    paid = Event.objects.get(data__object__id=unlock.order.pk)
    assert len(_dispatches(callbacks)) == 1 and paid.dispatched_at is None
    _dispatches(callbacks)[0]()
    paid.refresh_from_db()
    assert paid.dispatched_at is not None
    assert WebhookDelivery.objects.filter(event=paid, endpoint=endpoint).count() == 1


def _dispatches(callbacks) -> list:
    """The after-commit callbacks that queue the events' dispatch (others cache account ids)."""
    return [callback for callback in callbacks if callback.__qualname__.startswith("events_record.")]


def test_the_spends_order_holds_its_lines_without_a_query(store, reader):
    """The order a spend returns reads its lines with no query, and a query on them is still
    scoped to that order: another order's lines never show up in it."""
    first = post_unlock(post=post_create(store=store, title="One", amount=25, status="published"), method="wallet", buyer=reader).order
    post = post_create(store=store, title="Two", amount=30, status="published")
    order = post_unlock(post=post, method="wallet", buyer=reader).order
    with CaptureQueriesContext(connection) as queries:
        lines = [(ln.product_id, ln.unit_amount) for ln in order.lines.all()]
    assert lines == [(post.product_id, 30)]
    assert len(queries) == 0
    assert [ln.unit_amount for ln in order.lines.filter(unit_amount__gte=1)] == [30]
    assert first.pk != order.pk and [ln.unit_amount for ln in first.lines.all()] == [25]

import pytest
from django.core import mail

from stall.ledger.selectors import account_balance
from stall.orders.models import Order
from stall.payments.models import Refund
from stall.testing import ProductFactory, StoreFactory, buy, product_with_file

pytestmark = pytest.mark.django_db


def balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.id, currency=store.currency).amount


@pytest.fixture
def order(store):
    """A $10.00 card order; the sandbox rail keeps 2.9% + 30¢ = 59¢."""
    product = product_with_file(store=store, name="Sample Pack", amount=1000)
    return buy(store=store, product=product, email="fan@example.com")


def test_overview_shows_balance_orders_and_sales(dash, store, order):
    """The overview shows the ledger balance, the number of orders, gross sales and recent orders."""
    second = buy(store=store, product=ProductFactory(store=store, amount=500), email="other@example.com")

    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert balance(store) == 1000 - 59 + 500 - 45
    assert '<div class="stat">$13.96</div>' in page
    assert '<div class="stat">2</div>' in page
    assert '<div class="stat">$15.00</div>' in page
    assert f'href="/s/{store.slug}/"' in page
    assert page.index(second.pk) < page.index(order.pk)  # newest first


def test_overview_of_a_store_with_nothing_sold(dash, store):
    """A new store shows a zero balance and invites the creator to add a product."""
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert '<div class="stat">$0.00</div>' in page
    assert "Add a product" in page


def test_orders_list_search_by_email_and_by_id(dash, store, order):
    """The order list finds orders by part of the email or by the exact order id, and only this store's."""
    product = ProductFactory(store=store, amount=500)
    other = buy(store=store, product=product, email="someone@example.org")
    foreign_store = StoreFactory()
    foreign = buy(store=foreign_store, product=ProductFactory(store=foreign_store), email="fan@example.com")

    everything = dash.get(f"/dashboard/{store.slug}/orders/").content.decode()
    by_email = dash.get(f"/dashboard/{store.slug}/orders/", {"q": "FAN@example"}).content.decode()
    by_id = dash.get(f"/dashboard/{store.slug}/orders/", {"q": other.pk}).content.decode()
    nothing = dash.get(f"/dashboard/{store.slug}/orders/", {"q": "nobody@example.com"}).content.decode()

    assert order.pk in everything and other.pk in everything and foreign.pk not in everything
    assert everything.index(other.pk) < everything.index(order.pk)
    assert order.pk in by_email and other.pk not in by_email and foreign.pk not in by_email
    assert other.pk in by_id and order.pk not in by_id
    assert "No orders match “nobody@example.com”." in nothing
    assert '<span class="badge badge-paid">Paid</span>' in everything
    assert "$10.00" in everything


def test_orders_list_pages_older_orders(dash, store):
    """Fifty orders a page, newest first; the "older" link continues after the last one shown."""
    product = ProductFactory(store=store, amount=100)
    orders = [buy(store=store, product=product, email=f"b{i}@example.com") for i in range(52)]

    first = dash.get(f"/dashboard/{store.slug}/orders/").content.decode()
    second = dash.get(f"/dashboard/{store.slug}/orders/", {"before": orders[2].pk}).content.decode()

    assert [o.pk in first for o in orders] == [False, False] + [True] * 50
    assert f"before={orders[2].pk}" in first
    assert [o.pk in second for o in orders] == [True, True] + [False] * 50
    assert "before=" not in second


def test_order_detail(dash, store, order):
    """The detail shows the lines, email, payment, fees, net and the downloads' status."""
    page = dash.get(f"/dashboard/{store.slug}/orders/{order.pk}/").content.decode()

    assert "Sample Pack" in page
    assert "fan@example.com" in page
    assert "sandbox_visa" in page
    assert "−$0.59" in page  # processor fee
    assert "$9.41" in page  # net
    assert '<span class="badge badge-paid">Active</span>' in page
    assert "Up to $10.00 can be refunded." in page


def test_full_refund(dash, store, order, django_capture_on_commit_callbacks):
    """An empty amount refunds the whole order: money goes back, downloads are revoked, the buyer is told."""
    before = balance(store)

    with django_capture_on_commit_callbacks(execute=True):
        response = dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": "", "reason": "asked"})

    assert response["Location"] == f"/dashboard/{store.slug}/orders/{order.pk}/"
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("refunded", 1000)
    assert balance(store) == before - 1000
    assert list(Refund.objects.values_list("amount", "reason", "status")) == [(1000, "asked", "succeeded")]
    assert [(m.to, m.subject) for m in mail.outbox] == [(["fan@example.com"], f"Refund from {store.name}")]
    page = dash.get(response["Location"]).content.decode()
    assert "Refunded $10.00." in page
    assert "This order has been refunded in full." in page
    assert "Revoked" in page


def test_partial_refund(dash, store, order):
    """A typed amount refunds that much; the order stays partially refunded with its downloads."""
    before = balance(store)

    dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": "2.50", "reason": ""})

    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("partially_refunded", 250)
    assert balance(store) == before - 250
    page = dash.get(f"/dashboard/{store.slug}/orders/{order.pk}/").content.decode()
    assert "Up to $7.50 can be refunded." in page
    assert '<span class="badge badge-partially_refunded">Partially refunded</span>' in page


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("10.01", "At most $10.00 of this order can be refunded."),
        ("abc", "“abc” is not an amount."),
        ("-1", "Amount cannot be negative."),
        ("0", "Amount must be greater than zero."),
        ("1.001", "USD amounts have at most 2 decimal places."),
    ],
    ids=["above-refundable", "not-an-amount", "negative", "zero", "too-many-decimals"],
)
def test_refund_refused_moves_no_money(dash, store, order, amount, message):
    """A refund the service or the form refuses shows why and moves no money."""
    before = balance(store)

    response = dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": amount, "reason": ""})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert balance(store) == before
    assert not Refund.objects.exists()
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == ("paid", 0)


def test_refund_of_a_refunded_order_is_refused(dash, store, order):
    """Once refunded in full, another refund is refused with the reason and moves no money."""
    dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": "", "reason": ""})
    before = balance(store)

    response = dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": "1", "reason": ""})

    assert response.status_code == 400
    assert '<div class="alert alert-error" role="alert">This order has been refunded in full.</div>' in response.content.decode()
    assert balance(store) == before
    assert Refund.objects.count() == 1


def test_refund_of_a_free_order_is_refused(dash, store):
    """A free order has no payment to refund."""
    free = buy(store=store, product=ProductFactory(store=store, amount=0))

    response = dash.post(f"/dashboard/{store.slug}/orders/{free.pk}/", {"amount": "", "reason": ""})

    assert response.status_code == 400
    assert "A free order has nothing to refund." in response.content.decode()
    assert Order.objects.get(pk=free.pk).status == "paid"


def test_order_page_and_list_show_the_net_after_refunds_and_fees(dash, store, settings):
    """With a 5% platform fee, a $10.00 card sale refunded by $2.50: the order page shows the card
    fee (59¢), the platform fee still paid (37¢ of 50¢: 13¢ came back with the refund) and the net
    the order moved into the balance, $6.54, which the orders list shows too."""
    settings.STALL_PLATFORM_FEE_BPS = 500
    product = ProductFactory(store=store, amount=1000)
    order = buy(store=store, product=product, email="fan@example.com")
    dash.post(f"/dashboard/{store.slug}/orders/{order.pk}/", {"amount": "2.50", "reason": ""})
    assert balance(store) == 654

    page = dash.get(f"/dashboard/{store.slug}/orders/{order.pk}/").content.decode()
    listing = dash.get(f"/dashboard/{store.slug}/orders/").content.decode()

    assert '−$0.59' in page
    assert "$0.50, of which refunds gave back $0.13." in page
    assert '<td class="num nowrap">−$0.37</td>' in page
    assert '<td class="num nowrap">$6.54</td>' in page
    assert '<th class="num">Net</th>' in listing
    assert '<td class="c-net num nowrap">$6.54<span class="show-sm"> net</span></td>' in listing

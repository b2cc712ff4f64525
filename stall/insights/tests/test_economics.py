from decimal import Decimal

import pytest

from stall.accounts.services import buyer_for_email
from stall.checkout.services import CheckoutItem, checkout_create
from stall.insights.economics import order_processing_cost, store_economics
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.testing import ProductFactory, StoreFactory, buy
from stall.wallets.services import tab_settle, wallet_top_up

pytestmark = pytest.mark.django_db


def spend(store, product, buyer, method):
    checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk)])
    return checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer).order


@pytest.fixture
def sales(store):
    """One $3.00 card sale (39¢ fee), four 25¢ wallet sales after a $10 top-up, two 25¢ sales on an open tab."""
    post = ProductFactory(store=store, name="A post", amount=25)
    card = buy(store=store, product=ProductFactory(store=store, amount=300))
    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=1000, currency="USD", payment_method="sandbox_visa")
    wallet = [spend(store, post, reader, "wallet") for _ in range(4)]
    debtor = buyer_for_email(email="debtor@example.com")
    tab = [spend(store, post, debtor, "tab") for _ in range(2)]
    return {"card": card, "wallet": wallet, "tab": tab, "debtor": debtor, "post": post}


def test_the_effective_fee_rate_and_its_rails_come_from_one_query(store, sales, django_assert_num_queries):
    """Card: 39¢ on $3.00 (13%). Wallet: four shares of the 59¢ top-up fee, 5¢ on $1.00 (5%). Tab: open, so its
    sales are pending and left out of the rates: 44¢ on $4.00 is 11%."""
    assert [o.fee for o in sales["wallet"]] == [1, 1, 2, 1]  # 59×25/1000, 58×25/975, 57×25/950 = 1.5 → 2, 55×25/925
    with django_assert_num_queries(1):
        economics = store_economics(store=store)
    assert (economics.orders, economics.gross, economics.fees, economics.rate) == (7, 450, 44, Decimal("11.00"))
    assert [(r.rail, r.orders, r.gross, r.fees, r.pending_orders, r.rate) for r in economics.rails] == [
        ("card", 1, 300, 39, 0, Decimal("13.00")),
        ("wallet", 4, 100, 5, 0, Decimal("5.00")),
        ("tab", 2, 50, 0, 2, None),
    ]
    assert (economics.tab_pending_orders, economics.tab_pending_gross) == (2, 50)


def test_settling_the_tab_allocates_its_fee_to_the_tab_sales(store, sales):
    """The first tab is settled for 50¢ with a 31¢ card fee (2.9% + 30¢): its two sales share it, 16¢ and 15¢."""
    tab_settle(buyer=sales["debtor"], currency="USD", payment_method="sandbox_visa")
    fees = sorted(Order.objects.get(pk=o.pk).fee for o in sales["tab"])
    assert fees == [15, 16]
    economics = store_economics(store=store)
    assert [(r.rail, r.fees, r.pending_orders, r.rate) for r in economics.rails][2] == ("tab", 31, 0, Decimal("62.00"))
    assert (economics.tab_pending_orders, economics.tab_pending_gross) == (0, 0)
    assert (economics.fees, economics.rate) == (39 + 5 + 31, Decimal("16.67"))


def test_another_stores_sales_and_free_orders_do_not_count(store, sales):
    other = StoreFactory()
    buy(store=other, product=ProductFactory(store=other, amount=1000))
    buy(store=store, product=ProductFactory(store=store, amount=0))
    assert store_economics(store=store).orders == 7


def test_a_store_with_no_sales_has_no_rate(store):
    economics = store_economics(store=store)
    assert (economics.orders, economics.gross, economics.fees, economics.rate) == (0, 0, 0, None)


def test_each_order_says_where_its_processing_cost_comes_from(store, sales):
    card = order_processing_cost(order=sales["card"])
    assert (card.fee, card.rate, card.note, card.pending) == (39, Decimal("13.00"), "", False)
    wallet = order_processing_cost(order=sales["wallet"][0])
    assert (wallet.fee, wallet.rate, wallet.pending) == (1, Decimal("4.00"), False)
    assert wallet.note == "This sale's share of the card fee the buyer's wallet top-up cost."
    tab = order_processing_cost(order=sales["tab"][0])
    assert (tab.note, tab.pending) == ("Allocated when the tab is settled.", True)
    tab_settle(buyer=sales["debtor"], currency="USD", payment_method="sandbox_visa")
    settled = order_processing_cost(order=Order.objects.get(pk=sales["tab"][0].pk))
    assert settled.pending is False and settled.fee in (15, 16)
    assert settled.note == "This sale's share of the card fee that settling the buyer's tab cost."


def test_the_overview_shows_the_effective_fee_rate_and_the_rails(dash, store, sales):
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()
    assert '<div class="stat">11.00%</div>' in page
    assert "$0.44 processing fees" in page
    assert "Processing cost by rail" in page
    assert "2 tab sales ($0.50) on open tabs: their share is allocated when the tab is settled" in page
    assert '2 <span class="small muted">(2 pending)</span>' in page


def test_the_order_page_shows_a_wallet_sales_share_and_a_tab_sales_pending_fee(dash, store, sales):
    page = dash.get(f"/dashboard/{store.slug}/orders/{sales['wallet'][0].pk}/").content.decode()
    assert "share of the card fee the buyer&#x27;s wallet top-up cost" in page
    assert "−$0.01 <span class=\"small muted\">(4.00%)</span>" in page
    page = dash.get(f"/dashboard/{store.slug}/orders/{sales['tab'][0].pk}/").content.decode()
    assert "Allocated when the tab is settled." in page
    assert '<span class="muted">pending</span>' in page


def test_refunds_leave_the_processing_fees_equal_to_the_orders_net_fees(dash, store, sales):
    """A wallet sale refunded in full gives its 1¢ share back and a card sale keeps its fee when
    refunded in part: the overview's processing fees (43¢) are the sum of the orders' net fees,
    the same figure the API gives for each order."""
    from stall.orders.refunds import refund_create

    refund_create(store=store, order_id=sales["wallet"][0].pk)
    refund_create(store=store, order_id=sales["card"].pk, amount=100)
    net_fees = sum(o.fee_net for o in Order.objects.filter(store=store))

    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert net_fees == 44 - 1
    assert store_economics(store=store).fees == net_fees
    assert "$0.43 processing fees" in page

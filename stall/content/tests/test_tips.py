"""Tip jars and tips: stall/content/services.py and selectors.py."""

import pytest

from stall.accounts.services import buyer_for_email
from stall.catalog.models import Product, ProductKind
from stall.checkout.models import Checkout
from stall.content.errors import CardNotAllowed, TipInvalid, TipJarInvalid, TipJarNotFound
from stall.content.models import Tip
from stall.content.selectors import supporters_public, tip_jar_panel, tip_jar_raised
from stall.content.services import tip_jar_update, tip_send
from stall.core.errors import StallError
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.payments.models import Payment
from stall.testing import StoreFactory
from stall.wallets.errors import WalletEmpty

from .conftest import assert_ledger_balanced, store_balance, wallet_balance


def money_moved():
    return (Payment.objects.count(), Order.objects.count(), Checkout.objects.count(), Tip.objects.count())


def test_enabling_the_jar_makes_a_published_tip_product(store):
    """The first tip_jar_update makes a pay-what-you-want product of kind tip; defaults are $1/$3/$5, 50¢ to $500."""
    jar = tip_jar_update(store=store, enabled=True)
    product = Product.objects.get(pk=jar.product_id)
    assert (product.kind, product.price_type, product.amount, product.status, product.slug) == (
        ProductKind.TIP, "pay_what_you_want", 50, "published", "tip-jar")
    assert (jar.presets, jar.minimum, jar.maximum, jar.show_supporters) == ([100, 300, 500], 50, 50000, True)
    tip_jar_update(store=store, enabled=False, minimum=25, presets=[25, 100])
    product.refresh_from_db()
    assert (product.status, product.amount) == ("draft", 25)
    assert Product.objects.filter(kind=ProductKind.TIP).count() == 1


def test_the_jar_takes_another_address_when_tip_jar_is_taken(store):
    """A product already at /tip-jar/ keeps it; the jar's product gets a suffixed address."""
    from stall.testing import ProductFactory

    ProductFactory(store=store, slug="tip-jar")
    jar = tip_jar_update(store=store, enabled=True)
    assert jar.product.slug.startswith("tip-jar-") and len(jar.product.slug) == len("tip-jar-") + 8


@pytest.mark.parametrize("changes, param, message", [
    ({"minimum": 0}, "minimum", "Amount must be greater than zero."),
    ({"minimum": 500, "maximum": 100}, "maximum", "The largest tip cannot be below the smallest."),
    ({"presets": [10]}, "presets", "Each preset must be between $0.50 and $500.00."),
    ({"presets": [100, 200, 300, 400, 500, 600, 700]}, "presets", "Offer at most 6 preset amounts."),
    ({"title": "  "}, "title", "Give the tip jar a title."),
    ({"goal_amount": 0}, "goal_amount", "Amount must be greater than zero."),
])
def test_bad_jar_settings_are_refused(store, changes, param, message):
    """Each bad setting names its field and leaves no jar behind."""
    with pytest.raises(StallError) as exc:
        tip_jar_update(store=store, enabled=True, **changes)
    assert (exc.value.param, exc.value.message) == (param, message)
    assert not Product.objects.filter(kind=ProductKind.TIP).exists()


def test_a_wallet_tip_pays_the_store_and_keeps_the_message(store, jar, funded):
    """A $1 tip from a $5 wallet: the wallet has $4.00, the store $0.91 (less a 9¢ fee share), the Tip keeps the words."""
    tip = tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Ana", message="Thanks!", public=True).tip
    assert (tip.amount, tip.currency, tip.name, tip.message, tip.public, tip.buyer_id) == (100, "USD", "Ana", "Thanks!", True, funded.pk)
    assert (tip.order.amount_total, tip.order.fee, tip.order.payment.rail) == (100, 9, "wallet")
    assert wallet_balance(funded) == 400
    assert store_balance(store) == 91
    assert_ledger_balanced()


def test_a_tab_tip_goes_on_the_tab(store, jar, reader):
    """A 50¢ tip on the tab: the store is paid 50¢ and the tab owes it."""
    tip = tip_send(store=store, amount=50, method="tab", buyer=reader).tip
    assert tip.order.payment.rail == "tab"
    assert store_balance(store) == 50
    assert_ledger_balanced()


@pytest.mark.parametrize("amount, message, code, param, text", [
    (49, "", "amount_too_small", "amount", "The smallest tip is $0.50."),
    (50001, "", "amount_too_large", "amount", "The largest tip is $500.00."),
    ("1.00", "", "invalid_amount", "amount", "Enter an amount."),
    (100, "x" * 501, "message_too_long", "message", "Keep the message to 500 characters (it has 501)."),
])
def test_bad_tips_are_refused_and_charge_nothing(store, jar, funded, amount, message, code, param, text):
    """Below the minimum, above the maximum, not a number, a message over 500 characters: refused, nothing charged."""
    before = (money_moved(), wallet_balance(funded), store_balance(store))
    with pytest.raises(TipInvalid) as exc:
        tip_send(store=store, amount=amount, method="wallet", buyer=funded, message=message)
    assert (exc.value.code, exc.value.param, exc.value.message) == (code, param, text)
    assert (money_moved(), wallet_balance(funded), store_balance(store)) == before


def test_a_message_of_exactly_500_characters_is_kept(store, jar, funded):
    """The limit is inclusive."""
    assert len(tip_send(store=store, amount=100, method="wallet", buyer=funded, message="y" * 500).tip.message) == 500


def test_a_tip_from_an_empty_wallet_is_refused_and_leaves_nothing(store, jar, reader):
    """WalletEmpty, and no checkout, pending tip, order or Tip is left."""
    with pytest.raises(WalletEmpty):
        tip_send(store=store, amount=100, method="wallet", buyer=reader, message="Hi")
    assert money_moved() == (0, 0, 0, 0)
    assert_ledger_balanced()


def test_a_store_without_an_enabled_jar_takes_no_tips(store, funded):
    """No jar, or a jar switched off: TipJarNotFound."""
    with pytest.raises(TipJarNotFound):
        tip_send(store=store, amount=100, method="wallet", buyer=funded)
    tip_jar_update(store=store, enabled=False)
    with pytest.raises(TipJarNotFound):
        tip_send(store=store, amount=100, method="wallet", buyer=funded)


def test_a_card_tip_becomes_a_tip_when_the_card_is_paid(store, jar):
    """By card the tip waits on the checkout; paying it on the sandbox page makes the Tip with the message."""
    sent = tip_send(store=store, amount=300, method="card", email="fan@example.com", name="Bo", message="Keep going", public=True)
    assert sent.tip is None and Tip.objects.count() == 0
    checkout_confirm(checkout_id=sent.checkout.pk, payment_method="sandbox_visa")
    tip = Tip.objects.get()
    assert (tip.amount, tip.name, tip.message, tip.public, tip.order.email) == (300, "Bo", "Keep going", True, "fan@example.com")
    assert tip.buyer == buyer_for_email(email="fan@example.com")
    assert store_balance(store) == 300 - 39  # 2.9% + 30¢
    assert_ledger_balanced()


def test_a_card_tip_below_the_card_minimum_is_refused(store, jar):
    """With the jar taking tips from 10¢, a 49¢ tip is fine from the wallet but refused by card (cards start at 50¢)."""
    tip_jar_update(store=store, minimum=10)
    with pytest.raises(CardNotAllowed, match=r"Card payments start at \$0.50; tip less from your wallet or tab."):
        tip_send(store=store, amount=49, method="card", email="fan@example.com")
    assert Checkout.objects.count() == 0


def test_buying_the_tip_product_directly_still_records_a_tip(store, jar):
    """The tip product bought through the ordinary checkout gets a private Tip with no message."""
    from stall.testing import buy

    buy(store=store, product=jar.product, amount=200, email="direct@example.com")
    tip = Tip.objects.get()
    assert (tip.amount, tip.name, tip.message, tip.public) == (200, "", "", False)


def test_the_supporters_list_never_shows_a_private_tippers_name_or_message(store, jar, funded):
    """Newest first; a tipper who did not opt in is "Someone" with no message; an opted-in one without a name is "Someone" too."""
    tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Secret Sam", message="private words", public=False)
    tip_send(store=store, amount=300, method="wallet", buyer=funded, name="Ana", message="Love it", public=True)
    tip_send(store=store, amount=50, method="wallet", buyer=funded, name="", message="Anonymous but public", public=True)
    shown = [(s.name, s.amount, s.message) for s in supporters_public(jar=jar)]
    assert shown == [("Someone", 50, "Anonymous but public"), ("Ana", 300, "Love it"), ("Someone", 100, "")]
    assert "Secret Sam" not in repr(supporters_public(jar=jar)) and "private words" not in repr(supporters_public(jar=jar))


def test_a_store_can_hide_its_supporters_list(store, jar, funded):
    """With show_supporters off the list is empty, whatever the tippers chose."""
    tip_send(store=store, amount=100, method="wallet", buyer=funded, name="Ana", public=True)
    tip_jar_update(store=store, show_supporters=False)
    jar.refresh_from_db()
    assert supporters_public(jar=jar) == []


def test_goal_progress_sums_the_tips_less_refunds(store, jar, funded):
    """$1 + $3 towards a $20 goal is 20%; refunding the $3 takes it back to 5%, and the refunded tip leaves the list."""
    tip_send(store=store, amount=100, method="wallet", buyer=funded)
    three = tip_send(store=store, amount=300, method="wallet", buyer=funded, name="Ana", public=True).tip
    panel = tip_jar_panel(store=store, buyer=funded)
    assert (panel.raised, panel.percent, panel.wallet_balance) == (400, 20, 100)
    refund_create(store=store, order_id=three.order_id)
    panel = tip_jar_panel(store=store)
    assert (panel.raised, panel.percent) == (100, 5)
    assert [s.amount for s in panel.supporters] == [100]
    assert_ledger_balanced()


def test_goal_progress_stops_at_100_percent(store, jar, funded):
    """Past the goal the bar is full, the amount keeps counting."""
    tip_jar_update(store=store, goal_amount=200)
    tip_send(store=store, amount=300, method="wallet", buyer=funded)
    panel = tip_jar_panel(store=store)
    assert (panel.raised, panel.percent) == (300, 100)


def test_tips_of_another_store_do_not_count(store, jar, funded):
    """Each store's jar sums its own tips."""
    other = StoreFactory()
    other_jar = tip_jar_update(store=other, enabled=True)
    tip_send(store=other, amount=500, method="wallet", buyer=funded, name="Ana", public=True)
    assert tip_jar_raised(jar=jar) == 0
    assert supporters_public(jar=jar) == []
    assert tip_jar_raised(jar=other_jar) == 500


def test_bad_jar_settings_keep_the_old_ones(store, jar):
    """A refused update changes nothing."""
    with pytest.raises(TipJarInvalid):
        tip_jar_update(store=store, minimum=100, maximum=50)
    jar.refresh_from_db()
    assert (jar.minimum, jar.maximum) == (50, 50000)

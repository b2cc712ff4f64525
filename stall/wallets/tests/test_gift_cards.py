"""Gift cards: issued by hand or bought, emailed, redeemed into the wallet, spent, cancelled, refunded."""

import re
from datetime import UTC, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from stall.accounts.services import buyer_for_email
from stall.catalog.models import PriceType, ProductKind
from stall.core.limits import RateLimited
from stall.ledger.selectors import account_balance
from stall.orders.refunds import refund_create
from stall.payments.errors import RefundInvalid
from stall.payments.rails.wallet import wallet_for
from stall.testing import ProductFactory, StoreFactory, buy
from stall.wallets import gift_cards as gc
from stall.wallets.models import GiftCard, GiftCardPurchase

from .conftest import (
    alerts,
    assert_ledger_balanced,
    field_errors,
    sign_in,
    spend,
    store_balance,
    words,
)

CODE = re.compile(r"[0-9A-Z]{4}(?:-[0-9A-Z]{4}){4}")


def liability(store) -> int:
    return account_balance(kind="gift_card_liability", owner=store.pk, currency=store.currency).amount


def wallet_balance(buyer) -> int:
    return wallet_for(buyer=buyer, currency="USD").account.balance


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what a block's commit would run (the gift card emails) as the block ends."""
    return django_capture_on_commit_callbacks


@pytest.fixture
def gift_product(store):
    return ProductFactory(store=store, name="Gift card", kind=ProductKind.GIFT_CARD, amount=1000)


def test_a_code_is_20_random_base32_characters_and_typing_slips_still_match():
    """Codes are 100 random bits; case, spaces, dashes and O/0, I/L/1 slips are forgiven."""
    code = gc.code_generate()
    assert CODE.fullmatch(code)
    assert len({gc.code_generate() for _ in range(200)}) == 200
    assert gc.code_hash(code.lower().replace("-", " ")) == gc.code_hash(code)
    assert gc.code_normalize("ab0l-o1i") == "AB01011"
    assert gc.code_hash(code) != gc.code_hash(code[:-1] + ("0" if code[-1] != "0" else "1"))


def test_issuing_by_hand_moves_the_value_from_the_balance_to_the_liability_and_emails_the_code(store, committed):
    """A giveaway: the store's balance pays the card's value into the gift card liability; the
    recipient gets the code with the message, and the code is not kept once sent."""
    with committed(execute=True):
        card, code = gc.gift_card_issue(store=store, amount=500, recipient_email="friend@example.com",
                                    recipient_name="Ada", sender_name="The shop", message="Thanks for all!")
    assert (store_balance(store), liability(store)) == (-500, 500)
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["friend@example.com"]
    assert email.subject == f"A $5.00 gift card for {store.name}"
    assert code in email.body and "Thanks for all!" in email.body and "The shop sent you" in email.body
    assert f"?next=%2Fs%2F{store.slug}%2Fredeem%2F" in email.body  # a sign-in link to the redeem page
    card.refresh_from_db()
    assert card.pending_code == "" and card.emailed_at is not None
    assert card.code_hash == gc.code_hash(code) and code not in str(GiftCard.objects.filter(pk=card.pk).values().get())
    assert [e.kind for e in card.events.all()] == ["issued", "emailed"]
    assert_ledger_balanced()


def test_a_send_date_schedules_the_email_for_that_day(store, committed):
    """With a send date the email is a scheduled Huey task: nothing goes out before it."""
    send_at = timezone.now() + timedelta(days=3)
    with committed(execute=True):
        card, code = gc.gift_card_issue(store=store, amount=500, recipient_email="later@example.com", send_at=send_at)
    assert mail.outbox == []
    card.refresh_from_db()
    assert card.pending_code == code and card.send_at == send_at
    scheduled = [t for t in HUEY.scheduled() if t.args == (card.pk,)]
    assert [t.name for t in scheduled] == ["gift_card_email_send"]
    assert abs(scheduled[0].eta.replace(tzinfo=UTC) - send_at) < timedelta(seconds=1)
    from stall.wallets.tasks import gift_card_email_send

    gift_card_email_send.call_local(card.pk)  # what the consumer runs at the send date
    gift_card_email_send.call_local(card.pk)  # a repeat sends nothing more
    assert len(mail.outbox) == 1 and code in mail.outbox[0].body


def test_redeeming_moves_the_balance_into_the_wallet_to_spend_25_cents_at_a_time(store, buyer):
    """Redeemed, the card's balance is the buyer's wallet money: a 25¢ post is one click."""
    card, code = gc.gift_card_issue(store=store, amount=500)
    redeemed = gc.gift_card_redeem(store=store, buyer=buyer, code=code.lower())
    assert (redeemed.status, redeemed.balance) == ("redeemed", 0)
    assert (wallet_balance(buyer), liability(store)) == (500, 0)
    post = ProductFactory(store=store, name="A 25¢ post", amount=25)
    order = spend(store=store, product=post, buyer=buyer)
    assert (order.amount_total, order.payment.rail) == (25, "wallet")
    assert wallet_balance(buyer) == 475
    assert [e.kind for e in GiftCard.objects.get(pk=card.pk).events.all()] == ["issued", "redeemed"]
    assert_ledger_balanced()


@pytest.mark.parametrize("case", ["wrong", "other_store", "used_up", "expired", "cancelled", "blank"])
def test_a_refused_redemption_says_why_and_moves_nothing(store, buyer, case):
    """A wrong code, another store's card, a card already redeemed, expired or cancelled: a clear
    error and no money moved."""
    card, code = gc.gift_card_issue(store=store, amount=500, expires_at=timezone.now() + timedelta(days=1))
    expected = {
        "wrong": (gc.GiftCardCodeInvalid, "No gift card of this store has that code"),
        "other_store": (gc.GiftCardCodeInvalid, "No gift card of this store has that code"),
        "used_up": (gc.GiftCardUsedUp, "already been redeemed"),
        "expired": (gc.GiftCardExpired, "has expired"),
        "cancelled": (gc.GiftCardDisabled, "cancelled by the store"),
        "blank": (gc.GiftCardCodeInvalid, "Enter the gift card's code"),
    }[case]
    target, typed = store, code
    if case == "wrong":
        typed = gc.code_generate()
    elif case == "other_store":
        target = StoreFactory()
    elif case == "used_up":
        gc.gift_card_redeem(store=store, buyer=buyer_for_email(email="first@example.com"), code=code)
    elif case == "cancelled":
        gc.gift_card_void(store=store, card_id=card.pk)
    elif case == "blank":
        typed = " - "
    before = wallet_balance(buyer)
    with time_machine.travel(timezone.now() + timedelta(days=2 if case == "expired" else 0)):
        with pytest.raises(expected[0], match=expected[1]) as info:
            gc.gift_card_redeem(store=target, buyer=buyer, code=typed)
    assert info.value.status == 400 and info.value.param == "code"
    assert wallet_balance(buyer) == before
    assert_ledger_balanced()


@override_settings(STALL_LIMITS={"gift_card_redeem_buyer": "3/15m", "gift_card_redeem_address": "5/15m"})
def test_redemption_attempts_are_rate_limited_per_buyer_and_per_address(store, buyer):
    """After the limit even the right code is refused, so codes cannot be tried in bulk."""
    card, code = gc.gift_card_issue(store=store, amount=500)
    for _ in range(3):
        with pytest.raises(gc.GiftCardCodeInvalid):
            gc.gift_card_redeem(store=store, buyer=buyer, code=gc.code_generate(), address="203.0.113.9")
    with pytest.raises(RateLimited, match="Too many code attempts"):
        gc.gift_card_redeem(store=store, buyer=buyer, code=code, address="203.0.113.9")
    others = [buyer_for_email(email=f"o{n}@example.com") for n in range(3)]
    with pytest.raises(gc.GiftCardCodeInvalid):
        gc.gift_card_redeem(store=store, buyer=others[0], code="nope", address="203.0.113.9")
    with pytest.raises(RateLimited):  # the address's 6th attempt, by another buyer
        gc.gift_card_redeem(store=store, buyer=others[1], code=code, address="203.0.113.9")
    assert GiftCard.objects.get(pk=card.pk).status == "active"
    gc.gift_card_redeem(store=store, buyer=others[2], code=code, address="198.51.100.1")


def test_a_bought_gift_card_is_issued_for_the_named_recipient(store, gift_product, committed):
    """Buying a gift card product pays the store, then moves the face value to the liability; the
    recipient named at checkout gets the code with the sender's message."""
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.orders.checkout_pay import checkout_confirm

    checkout = checkout_create(store=store, email="giver@example.com", items=[CheckoutItem(product_id=gift_product.pk)])
    gc.gift_card_purchase_note(checkout=checkout, recipient_email="lucky@example.com", sender_name="Grace",
                               message="Happy birthday")
    with committed(execute=True):
        checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    card = GiftCard.objects.get(order=checkout.order)
    assert (card.initial_amount, card.recipient_email, card.purchaser_email) == (1000, "lucky@example.com", "giver@example.com")
    assert liability(store) == 1000
    assert store_balance(store) == -checkout.order.fee - checkout.order.platform_fee
    gift = [m for m in mail.outbox if m.to == ["lucky@example.com"]]
    assert len(gift) == 1 and "Grace sent you a $10.00 gift card" in gift[0].body and "Happy birthday" in gift[0].body
    assert_ledger_balanced()


def test_a_gift_card_paid_from_the_wallet_is_issued_too(store, gift_product, buyer):
    """The lean wallet spend runs the gift card fulfilment like the card path."""
    from stall.wallets.services import wallet_top_up

    wallet_top_up(buyer=buyer, amount=2000, currency="USD", payment_method="sandbox_visa")
    order = spend(store=store, product=gift_product, buyer=buyer)
    card = GiftCard.objects.get(order=order)
    assert (card.recipient_email, card.balance, liability(store)) == (buyer.email, 1000, 1000)
    assert_ledger_balanced()


def test_refunding_a_gift_card_order_cancels_its_card_and_a_redeemed_one_refuses_the_refund(store, gift_product, buyer, committed):
    order = buy(store=store, product=gift_product)
    card = GiftCard.objects.get(order=order)
    with pytest.raises(gc.GiftCardError, match="Refund a gift card order in full"):
        refund_create(store=store, order_id=order.pk, amount=100)
    refund_create(store=store, order_id=order.pk)
    card.refresh_from_db()
    assert (card.status, card.balance, liability(store)) == ("disabled", 0, 0)
    with committed(execute=True):
        second = buy(store=store, product=gift_product, email="b2@example.com")
    code = CODE.search([m for m in mail.outbox if m.to == ["b2@example.com"]][-1].body)[0]
    gc.gift_card_redeem(store=store, buyer=buyer, code=code)
    with pytest.raises(gc.GiftCardUsedUp, match="can no longer be refunded"):
        refund_create(store=store, order_id=second.pk)
    assert not second.refunds.exists()
    assert wallet_balance(buyer) == 1000
    assert_ledger_balanced()
    with pytest.raises(RefundInvalid):
        refund_create(store=store, order_id=order.pk)


def test_a_test_money_card_is_not_redeemed_into_a_wallet_of_real_money(store, buyer):
    """A card bought with test money stays out of a wallet holding real money."""
    from stall.ledger.models import AccountKind
    from stall.ledger.services import account_open, transfer_create

    wallet = wallet_for(buyer=buyer, currency="USD")
    clearing = account_open(kind=AccountKind.PROCESSOR_CLEARING, owner="stripe", currency="USD")
    transfer_create(idempotency_key="real", debit_account=clearing, credit_account=wallet.account, amount=300, code="top_up")
    card, code = gc.gift_card_issue(store=store, amount=500, livemode=False)
    with pytest.raises(gc.GiftCardTestMoney):
        gc.gift_card_redeem(store=store, buyer=buyer, code=code)
    assert GiftCard.objects.get(pk=card.pk).status == "active"
    assert wallet_balance(buyer) == 300


# --- pages ---------------------------------------------------------------------------------------


def test_buying_on_the_gift_page_then_redeeming_on_the_redeem_page(client, store, buyer, committed):
    """The buyer's pages: a gift form (amount chosen, recipient, message, send date) leads to the
    payment page; the recipient signs in from the email and redeems the code into their wallet."""
    product = ProductFactory(store=store, name="Any amount", kind=ProductKind.GIFT_CARD, amount=100,
                             price_type=PriceType.PAY_WHAT_YOU_WANT)
    assert client.get(reverse("stores:product", args=[store.slug, product.slug])).url == f"/s/{store.slug}/gift/{product.slug}/"
    url = reverse("gift_cards:buy", args=[store.slug, product.slug])
    bad = client.post(url, {"email": "giver@example.com", "amount": "0", "recipient_email": "nope"})
    assert bad.status_code == 400
    assert field_errors(bad) == ["Choose an amount above zero.", "Enter a valid email address."]
    assert GiftCardPurchase.objects.count() == 0
    ok = client.post(url, {"email": "giver@example.com", "amount": "7.50", "recipient_email": buyer.email,
                           "sender_name": "Grace", "message": "For reading"})
    assert ok.status_code == 302 and ok.url.startswith("/checkout/chk_")
    checkout_id = ok.url.split("/")[2]
    with committed(execute=True):
        client.post(ok.url, {"payment_method": "sandbox_visa"})
    card = GiftCard.objects.get(order__checkout_id=checkout_id)
    assert card.initial_amount == 750
    email = [m for m in mail.outbox if m.to == [buyer.email]][-1]
    code = CODE.search(email.body)[0]

    redeem = reverse("gift_cards:redeem", args=[store.slug])
    assert client.get(redeem).url.startswith("/library/?next=")
    sign_in(client, buyer)
    wrong = client.post(redeem, {"code": gc.code_generate()})
    assert wrong.status_code == 400 and "No gift card of this store has that code" in words(wrong)
    done = client.post(redeem, {"code": code}, follow=True)
    assert "$7.50 from your gift card is in your wallet." in words(done)
    assert wallet_balance(buyer) == 750
    again = client.post(redeem, {"code": code})
    assert again.status_code == 400 and "already been redeemed" in words(again)


def test_the_creator_page_shows_the_liability_issues_sells_and_cancels(client, creator, store, committed):
    client.force_login(creator)
    url = reverse("dashboard:gift_cards", args=[store.slug])
    bad = client.post(url, {"action": "issue", "amount": "", "recipient_email": "x"})
    assert bad.status_code == 400
    with committed(execute=True):
        page = client.post(url, {"action": "issue", "amount": "12.50", "recipient_email": "fan@example.com"}, follow=True)
    assert "Its code, shown this once:" in words(page)
    assert "Outstanding: $12.50 owed on 1 unredeemed card" in words(page)
    sell = client.post(url, {"action": "sell", "sell-name": "Gift card", "sell-amount": "0"})
    assert sell.status_code == 400
    client.post(url, {"action": "sell", "sell-name": "Gift card", "sell-amount": "25", "sell-buyer_chooses": "on"})
    product = store.products.get(kind=ProductKind.GIFT_CARD)
    assert (product.amount, product.price_type, product.status) == (2500, "pay_what_you_want", "published")
    card = GiftCard.objects.get(store=store)
    detail = client.get(reverse("dashboard:gift_card", args=[store.slug, card.pk]))
    assert "Issued" in words(detail) and "Emailed" in words(detail)
    cancelled = client.post(reverse("dashboard:gift_card_void", args=[store.slug, card.pk]), follow=True)
    assert alerts(cancelled) == [] and "cancelled; its value is back in your balance" in words(cancelled)
    assert liability(store) == 0 and store_balance(store) == 0
    other = StoreFactory()
    theirs, _ = gc.gift_card_issue(store=other, amount=100)
    assert client.get(reverse("dashboard:gift_card", args=[store.slug, theirs.pk])).status_code == 404
    assert client.post(reverse("dashboard:gift_card_void", args=[store.slug, theirs.pk])).status_code == 404

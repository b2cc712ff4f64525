"""Posts, unlocks and reader refunds: stall/content/services.py."""

import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from stall.catalog.models import Product, ProductKind
from stall.checkout.models import Checkout
from stall.content.errors import (
    CardNotAllowed,
    ConfirmRequired,
    PostInvalid,
    PostNotFound,
    UnlockRefundInvalid,
    UnlockRefundRefused,
)
from stall.content.models import Post, UnlockRefund
from stall.content.selectors import post_split_for, post_unlock_get
from stall.content.services import (
    post_create,
    post_image_add,
    post_unlock,
    post_update,
    unlock_refund_request,
)
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Entitlement, Order
from stall.payments.errors import BuyerRequired
from stall.payments.models import Payment, Refund
from stall.testing import StoreFactory
from stall.wallets.errors import TabLimitReached, WalletEmpty
from stall.wallets.models import Wallet
from stall.wallets.selectors import tab_open_get

from .conftest import BODY, SECRET, assert_ledger_balanced, make_post, store_balance, wallet_balance


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def money_moved():
    return (Payment.objects.count(), Order.objects.count(), Checkout.objects.count(), Refund.objects.count())


# --- Posts ----------------------------------------------------------------------------------


def test_a_post_is_a_product_of_kind_post(store):
    """post_create makes a fixed-price product of kind post named after the title, and the post holding the body."""
    post = post_create(store=store, title="  Field notes ", amount=1, body=BODY, status="published")
    product = Product.objects.get(pk=post.product_id)
    assert (product.kind, product.name, product.slug, product.amount, product.price_type, product.status) == (
        ProductKind.POST, "Field notes", "field-notes", 1, "fixed", "published")
    assert (post.store_id, post.body) == (store.pk, BODY)
    assert post.published_at is not None


def test_a_draft_has_no_publication_date_until_it_is_published(store):
    """published_at is set on the first publish and kept when the post is unpublished and published again."""
    post = make_post(store, status="draft")
    assert post.published_at is None
    post = post_update(post=post, status="published")
    first = post.published_at
    assert first is not None
    post = post_update(post=post, status="draft")
    post = post_update(post=post, status="published")
    assert post.published_at == first


def test_post_errors_name_the_post_fields(store):
    """A missing title is reported on "title"; a taken address on "slug"; a negative price on "amount"."""
    with pytest.raises(PostInvalid) as exc:
        post_create(store=store, title="  ")
    assert (exc.value.code, exc.value.param, exc.value.message) == ("invalid_post", "title", "Give the post a title.")
    make_post(store, slug="notes")
    with pytest.raises(PostInvalid, match="Another post or product of this store has that address.") as exc:
        make_post(store, slug="notes")
    assert exc.value.param == "slug"
    with pytest.raises(Exception, match="Amount cannot be negative.") as exc:
        make_post(store, amount=-1)
    assert exc.value.param == "amount"
    assert Post.objects.count() == 1


def test_the_paid_part_is_never_in_the_preview(store):
    """A 25¢ post's preview holds its first two paragraphs and not a word of the ending."""
    split = post_split_for(make_post(store))
    assert split.preview == "The free opening.\n\nA second free paragraph."
    assert SECRET not in split.preview
    assert split.rest == SECRET


def test_an_image_is_stored_publicly_and_added_to_the_body(store, settings, tmp_path):
    """An uploaded PNG goes to the default storage and is appended to the body as Markdown."""
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                          "OPTIONS": {"location": str(tmp_path), "base_url": "/media/"}}}
    post = make_post(store)
    png = png_bytes()
    url = post_image_add(post=post, upload=ContentFile(png, name="map.png"), alt="The map")
    assert url.startswith(f"/media/posts/{store.pk}/img_") and url.endswith("/map.png")
    assert Post.objects.get(pk=post.pk).body == f"{BODY}\n\n![The map]({url})\n"
    assert (tmp_path / url.removeprefix("/media/")).read_bytes() == png


def test_a_file_that_is_not_an_image_is_refused(store):
    """A text file named .png is refused and the body is unchanged."""
    post = make_post(store)
    with pytest.raises(PostInvalid, match="That file is not an image Stall can read.") as exc:
        post_image_add(post=post, upload=ContentFile(b"not a png", name="fake.png"))
    assert exc.value.param == "image"
    with pytest.raises(PostInvalid, match="Upload a PNG, JPEG, GIF or WebP image."):
        post_image_add(post=post, upload=ContentFile(b"x", name="script.svg"))
    assert Post.objects.get(pk=post.pk).body == BODY


# --- Unlocks --------------------------------------------------------------------------------


def test_unlocking_from_the_wallet_pays_the_store_and_grants_the_post(store, post, funded):
    """A 25¢ unlock from a $5 wallet: the wallet has $4.75, the store 23¢ (25¢ less its 2¢ share of the
    45¢ top-up fee), and the reader has an entitlement to the post."""
    result = post_unlock(post=post, method="wallet", buyer=funded)
    assert result.already is False
    order = result.order
    assert (order.amount_total, order.fee, order.payment.rail, order.email) == (25, 2, "wallet", "reader@example.com")
    assert wallet_balance(funded) == 475
    assert store_balance(store) == 23
    assert post_unlock_get(post=post, email=funded.email).order_id == order.pk
    assert_ledger_balanced()


def test_unlocking_twice_charges_once(store, post, funded):
    """The second unlock of the same post returns the first order and moves no money."""
    first = post_unlock(post=post, method="wallet", buyer=funded)
    before = money_moved()
    second = post_unlock(post=post, method="wallet", buyer=funded)
    third = post_unlock(post=post, method="tab", buyer=funded)
    assert (second.already, second.order.pk, third.already, third.order.pk) == (True, first.order.pk, True, first.order.pk)
    assert money_moved() == before
    assert wallet_balance(funded) == 475
    assert store_balance(store) == 23
    assert_ledger_balanced()


def test_unlocking_with_an_empty_wallet_is_refused_and_moves_nothing(store, post, reader):
    """With no money in the wallet, a wallet unlock raises WalletEmpty; no checkout, payment or order is left."""
    before = money_moved()
    with pytest.raises(WalletEmpty, match="Your wallet does not hold enough"):
        post_unlock(post=post, method="wallet", buyer=reader)
    assert money_moved() == before
    assert post_unlock_get(post=post, email=reader.email) is None
    assert store_balance(store) == 0
    assert_ledger_balanced()


def test_unlocking_on_the_tab_puts_the_price_on_the_tab(store, post, reader):
    """A reader with no wallet puts the 25¢ post on a new tab; the store is paid 25¢ at once."""
    order = post_unlock(post=post, method="tab", buyer=reader).order
    tab = tab_open_get(buyer=reader, currency="USD")
    tab.account.refresh_from_db()
    assert (order.payment.rail, order.payment.rail_reference) == ("tab", tab.pk)
    assert tab.account.debits_posted - tab.account.credits_posted == 25
    assert store_balance(store) == 25
    assert_ledger_balanced()


def test_a_full_tab_refuses_the_unlock_and_moves_nothing(store, reader):
    """A first tab holds $1.00: after four 25¢ posts the fifth is refused with TabLimitReached."""
    posts = [make_post(store, title=f"Post {i}") for i in range(5)]
    for post in posts[:4]:
        post_unlock(post=post, method="tab", buyer=reader)
    before = money_moved()
    with pytest.raises(TabLimitReached):
        post_unlock(post=posts[4], method="tab", buyer=reader)
    assert money_moved() == before
    assert store_balance(store) == 100
    assert_ledger_balanced()


def test_wallet_and_tab_unlocks_need_a_signed_in_reader(post):
    """Without a buyer the one-click methods raise BuyerRequired."""
    for method in ("wallet", "tab"):
        with pytest.raises(BuyerRequired):
            post_unlock(post=post, method=method)
    assert Checkout.objects.count() == 0


def test_above_the_one_click_limit_the_wallet_asks_to_confirm(store, funded):
    """With the one-click limit at $1, a $2 post raises ConfirmRequired, and unlocks once confirmed."""
    Wallet.objects.filter(buyer=funded).update(confirm_above=100)
    post = make_post(store, amount=200)
    with pytest.raises(ConfirmRequired, match=r"Confirm: pay \$2.00 from your wallet."):
        post_unlock(post=post, method="wallet", buyer=funded)
    assert Checkout.objects.count() == 0
    order = post_unlock(post=post, method="wallet", buyer=funded, confirmed=True).order
    assert order.amount_total == 200
    assert wallet_balance(funded) == 300


def test_a_card_is_refused_below_the_card_minimum(post, reader):
    """A 25¢ post cannot be paid by card (cards start at 50¢); no checkout is opened."""
    with pytest.raises(CardNotAllowed, match=r"Card payments start at \$0.50; unlock this from your wallet or tab."):
        post_unlock(post=post, method="card", buyer=reader)
    assert Checkout.objects.count() == 0


def test_a_card_unlock_opens_a_checkout_and_the_paid_order_unlocks(store, django_capture_on_commit_callbacks):
    """A $1 post by card: the checkout goes to the payment page; once the card is paid, the reader's email is entitled."""
    post = make_post(store, amount=100)
    result = post_unlock(post=post, method="card", email="Card.Reader@Example.com")
    assert (result.order, result.checkout.email, result.checkout.amount_total) == (None, "Card.Reader@example.com", 100)
    assert post_unlock_get(post=post, email="card.reader@example.com") is None
    checkout_confirm(checkout_id=result.checkout.pk, payment_method="sandbox_visa")
    assert post_unlock_get(post=post, email="card.reader@example.com").order.amount_total == 100
    assert store_balance(store) == 100 - 33  # less the card's 2.9% + 30¢
    assert_ledger_balanced()


def test_a_free_post_needs_no_unlock(store, reader):
    """Unlocking a free post charges nothing and makes no order."""
    post = make_post(store, amount=0)
    assert post_unlock(post=post, method="wallet", buyer=reader).already is True
    assert money_moved() == (0, 0, 0, 0)


def test_a_draft_or_archived_post_cannot_be_unlocked(store, funded):
    """Only published posts are sold."""
    for status in ("draft", "archived"):
        post = make_post(store, title=status, status=status)
        with pytest.raises(PostNotFound):
            post_unlock(post=post, method="wallet", buyer=funded)
    assert Order.objects.count() == 0


def test_an_unknown_method_is_refused(post, funded):
    """Only wallet, tab and card are ways to unlock."""
    with pytest.raises(Exception, match="Choose how to pay: wallet, tab, card.") as exc:
        post_unlock(post=post, method="bitcoin", buyer=funded)
    assert (exc.value.code, exc.value.param) == ("invalid_payment_method", "method")


# --- Reader refunds -------------------------------------------------------------------------


def test_a_refund_puts_the_money_back_in_the_wallet_and_locks_the_post(store, post, funded):
    """Within the window, a refund with a reason returns 25¢ to the wallet and the 2¢ fee share to its pool;
    the store is back to 0 and the post is locked again."""
    order = post_unlock(post=post, method="wallet", buyer=funded).order
    refund = unlock_refund_request(post=post, buyer=funded, reason="  Not what the title promised.  ")
    assert (refund.amount, refund.reason, refund.order_id) == (25, "Not what the title promised.", order.pk)
    assert wallet_balance(funded) == 500
    assert store_balance(store) == 0
    assert post_unlock_get(post=post, email=funded.email) is None
    assert Entitlement.objects.get(order=order).revoked_at is not None
    assert UnlockRefund.objects.get().refund_id == refund.pk
    assert_ledger_balanced()


def test_a_refund_of_a_tab_unlock_takes_it_off_the_open_tab(store, post, reader):
    """A tab unlock refunded while the tab is open leaves the tab owing nothing."""
    post_unlock(post=post, method="tab", buyer=reader)
    unlock_refund_request(post=post, buyer=reader, reason="Clicked by mistake")
    tab = tab_open_get(buyer=reader, currency="USD")
    tab.account.refresh_from_db()
    assert tab.account.debits_posted - tab.account.credits_posted == 0
    assert store_balance(store) == 0
    assert_ledger_balanced()


def test_after_a_refund_the_post_can_be_unlocked_again(store, post, funded):
    """A refunded unlock does not count as unlocked: unlocking again charges again."""
    post_unlock(post=post, method="wallet", buyer=funded)
    unlock_refund_request(post=post, buyer=funded, reason="Changed my mind")
    again = post_unlock(post=post, method="wallet", buyer=funded)
    assert again.already is False
    assert wallet_balance(funded) == 475


def test_a_refund_needs_a_reason_of_at_most_255_characters(post, funded):
    """No reason, or a reason over 255 characters, is refused before any money moves."""
    post_unlock(post=post, method="wallet", buyer=funded)
    before = money_moved()
    with pytest.raises(UnlockRefundInvalid, match="Tell the creator why you want your money back.") as exc:
        unlock_refund_request(post=post, buyer=funded, reason="   ")
    assert exc.value.param == "reason"
    with pytest.raises(UnlockRefundInvalid, match="Keep the reason to 255 characters."):
        unlock_refund_request(post=post, buyer=funded, reason="x" * 256)
    assert money_moved() == before
    assert wallet_balance(funded) == 475


def test_a_refund_past_the_window_is_refused_and_moves_nothing(store, post, funded, settings):
    """25 hours after the unlock (window 24 h) the refund is refused with refund_window_passed."""
    order = post_unlock(post=post, method="wallet", buyer=funded).order
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=25))
    before = (money_moved(), wallet_balance(funded), store_balance(store))
    with pytest.raises(UnlockRefundRefused, match="Refunds can be asked for within 24 hours of unlocking") as exc:
        unlock_refund_request(post=post, buyer=funded, reason="Too late?")
    assert exc.value.code == "refund_window_passed"
    assert (money_moved(), wallet_balance(funded), store_balance(store)) == before
    assert UnlockRefund.objects.count() == 0
    settings.STALL_UNLOCK_REFUND_HOURS = 48
    assert unlock_refund_request(post=post, buyer=funded, reason="A longer window").amount == 25


def test_refunds_are_limited_per_calendar_month(store, funded, settings):
    """With a limit of 3 a month, the fourth refund is refused; refunds from last month do not count."""
    posts = [make_post(store, title=f"Post {i}") for i in range(5)]
    for post in posts:
        post_unlock(post=post, method="wallet", buyer=funded)
    for post in posts[:3]:
        unlock_refund_request(post=post, buyer=funded, reason="Not for me")
    before = (money_moved(), wallet_balance(funded))
    with pytest.raises(UnlockRefundRefused, match="You have had 3 unlocks refunded this month, the most allowed.") as exc:
        unlock_refund_request(post=posts[3], buyer=funded, reason="One more")
    assert exc.value.code == "refund_limit_reached"
    assert (money_moved(), wallet_balance(funded)) == before
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    UnlockRefund.objects.update(created_at=month_start - timedelta(seconds=1))
    assert unlock_refund_request(post=posts[3], buyer=funded, reason="New month").amount == 25
    assert_ledger_balanced()


def test_the_limit_is_per_reader(store, funded):
    """Another reader's refunds do not count against this one's."""
    from stall.accounts.services import buyer_for_email
    from stall.wallets.services import wallet_top_up

    other = buyer_for_email(email="other@example.com")
    wallet_top_up(buyer=other, amount=500, currency="USD", payment_method="sandbox_visa")
    posts = [make_post(store, title=f"Post {i}") for i in range(4)]
    for post in posts[:3]:
        post_unlock(post=post, method="wallet", buyer=other)
        unlock_refund_request(post=post, buyer=other, reason="Nope")
    post_unlock(post=posts[3], method="wallet", buyer=funded)
    assert unlock_refund_request(post=posts[3], buyer=funded, reason="Mine").amount == 25


def test_a_post_not_unlocked_cannot_be_refunded(post, reader):
    """Nothing to give back: refused with not_unlocked."""
    with pytest.raises(UnlockRefundRefused, match="You have not unlocked this post.") as exc:
        unlock_refund_request(post=post, buyer=reader, reason="Why not")
    assert exc.value.code == "not_unlocked"


def test_a_refund_of_a_card_unlock_goes_back_to_the_card(store, reader):
    """A $1 unlock paid by card is refunded through the card rail; the store keeps only the fee loss."""
    post = make_post(store, amount=100)
    checkout = post_unlock(post=post, method="card", buyer=reader).checkout
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    refund = unlock_refund_request(post=post, buyer=reader, reason="Wrong post")
    assert (refund.status, refund.payment.rail) == ("succeeded", "sandbox")
    assert store_balance(store) == -33  # the card processor keeps its fee
    assert post_unlock_get(post=post, email=reader.email) is None
    assert_ledger_balanced()


def test_unlocks_in_one_store_do_not_unlock_another_stores_post(store, funded):
    """Posts with the same address in two stores are different products."""
    mine = make_post(store, slug="same")
    theirs = make_post(StoreFactory(), slug="same")
    post_unlock(post=mine, method="wallet", buyer=funded)
    assert post_unlock_get(post=theirs, email=funded.email) is None


@pytest.mark.django_db(transaction=True)
def test_parallel_double_clicks_unlock_once():
    """Six unlocks of one post racing from one reader (a double click, many tabs) make one order and
    take 25¢ once; the others find it unlocked."""
    import threading

    from django.db import connection

    from stall.accounts.services import buyer_for_email
    from stall.wallets.services import wallet_top_up

    store = StoreFactory()
    post = make_post(store)
    reader = buyer_for_email(email="racer@example.com")
    wallet_top_up(buyer=reader, amount=500, currency="USD", payment_method="sandbox_visa")
    results, barrier = [], threading.Barrier(6)

    def attempt():
        barrier.wait()
        try:
            results.append(post_unlock(post=post, method="wallet", buyer=reader).already)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] + [True] * 5
    assert Order.objects.count() == 1
    assert wallet_balance(reader) == 475
    assert_ledger_balanced()

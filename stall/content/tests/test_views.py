"""Reader pages: posts, the paywall, unlocks, refunds, the feed and the tip jar (stall/content/views.py, feeds.py)."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from stall.accounts.services import buyer_magic_link
from stall.checkout.models import Checkout
from stall.content.models import Tip
from stall.content.services import post_unlock, tip_jar_update, tip_send
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.testing import StoreFactory
from stall.wallets.models import Wallet

from .conftest import SECRET, assert_ledger_balanced, make_post, store_balance, wallet_balance


def sign_in(client, email="reader@example.com"):
    response = client.get(buyer_magic_link(email=email).removeprefix("http://127.0.0.1:8000"))
    assert response.status_code == 302


def text(response) -> str:
    return response.content.decode()


def post_url(post, suffix=""):
    return f"/s/{post.store.slug}/posts/{post.slug}/{suffix}"


# --- Reading --------------------------------------------------------------------------------


def test_a_signed_out_reader_sees_the_preview_and_the_paywall(client, post):
    """The preview, the price and a sign-in form; never the paid ending; no card for a 25¢ post."""
    response = client.get(post_url(post))
    page = text(response)
    assert response.status_code == 200
    assert "The free opening." in page and "A second free paragraph." in page
    assert SECRET not in page
    assert "Read the rest for $0.25" in page
    assert "Email me a sign-in link" in page
    assert "Card payments start at $0.50, so this post is unlocked from a wallet or a tab." in page
    assert 'value="card"' not in page


def test_a_post_at_the_card_minimum_offers_a_card_to_signed_out_readers(client, store):
    """A $1 post shows "Or pay $1.00 by card" with an email field."""
    page = text(client.get(post_url(make_post(store, amount=100))))
    assert "Or pay $1.00 by card" in page and 'name="email"' in page and 'value="card"' in page


def test_the_one_click_button_uses_the_wallet_when_it_holds_enough(client, post, funded):
    """With $5 in the wallet the button pays from it; with nothing it puts the post on the tab."""
    sign_in(client)
    page = text(client.get(post_url(post)))
    assert "Unlock with one click" in page
    assert 'name="method" value="wallet"' in page and "Paid from your wallet: $5.00 in it." in page
    Wallet.objects.filter(buyer=funded).delete()
    page = text(client.get(post_url(post)))
    assert 'name="method" value="tab"' in page and "Put on your tab" in page


def test_one_click_unlock_shows_the_whole_post(client, store, post, funded):
    """POSTing the unlock charges 25¢ from the wallet and sends the reader back to the full text."""
    sign_in(client)
    response = client.post(post_url(post, "unlock/"), {"method": "wallet"})
    assert (response.status_code, response["Location"]) == (302, post_url(post) + "#post-body")
    page = text(client.get(post_url(post)))
    assert SECRET in page
    assert "Unlocked for $0.25 from your wallet. Enjoy the read." in page
    assert wallet_balance(funded) == 475 and store_balance(store) == 23
    assert_ledger_balanced()


def test_unlocking_again_charges_nothing(client, post, funded):
    """A second unlock (a double click) says so and moves no money."""
    sign_in(client)
    client.post(post_url(post, "unlock/"), {"method": "wallet"})
    client.post(post_url(post, "unlock/"), {"method": "wallet"})
    page = text(client.get(post_url(post)))
    assert "You have already unlocked this post; nothing was charged." in page
    assert (Order.objects.count(), wallet_balance(funded)) == (1, 475)


def test_an_empty_wallet_is_refused_with_a_link_to_top_up(client, post, reader):
    """The page answers 402 with the error and a link to /wallet/; nothing is charged."""
    sign_in(client)
    response = client.post(post_url(post, "unlock/"), {"method": "wallet"})
    page = text(response)
    assert response.status_code == 402
    assert "Your wallet does not hold enough for this." in page
    assert '<a href="/wallet/">Top up your wallet</a>' in page
    assert SECRET not in page
    assert (Checkout.objects.count(), Payment.objects.count(), Order.objects.count()) == (0, 0, 0)


def test_a_full_tab_is_refused_with_a_link_to_settle_it(client, store, reader):
    """The fifth 25¢ post on a $1 first tab: the error links to /wallet/tab/."""
    posts = [make_post(store, title=f"Post {i}") for i in range(5)]
    sign_in(client)
    for p in posts[:4]:
        assert client.post(post_url(p, "unlock/"), {"method": "tab"}).status_code == 302
    response = client.post(post_url(posts[4], "unlock/"), {"method": "tab"})
    assert response.status_code == 402
    assert '<a href="/wallet/tab/">Settle your tab</a>' in text(response)
    assert Order.objects.count() == 4


def test_wallet_unlocks_need_a_signed_in_reader(client, post):
    """Signed out, a wallet unlock is answered 401 with the sign-in form."""
    response = client.post(post_url(post, "unlock/"), {"method": "wallet"})
    assert response.status_code == 401
    assert "Sign in to pay from your wallet or tab." in text(response)
    assert Checkout.objects.count() == 0


def test_a_junk_method_is_refused(client, post, funded):
    """An unknown method is a 400 with "Choose how to pay."."""
    sign_in(client)
    response = client.post(post_url(post, "unlock/"), {"method": "gold"})
    assert response.status_code == 400 and "Choose how to pay." in text(response)


def test_above_the_one_click_limit_the_reader_confirms_first(client, store, funded):
    """A $2 post with a $1 one-click limit shows a confirm page; confirming pays it."""
    Wallet.objects.filter(buyer=funded).update(confirm_above=100)
    post = make_post(store, amount=200)
    sign_in(client)
    response = client.post(post_url(post, "unlock/"), {"method": "wallet"})
    page = text(response)
    assert response.status_code == 200
    assert "Unlock “Field notes”: <strong>$2.00</strong> from your wallet, which holds $5.00." in page
    assert Order.objects.count() == 0
    response = client.post(post_url(post, "unlock/"), {"method": "wallet", "confirm": "on"})
    assert response.status_code == 302
    assert wallet_balance(funded) == 300


def test_a_signed_out_card_unlock_goes_to_the_payment_page(client, store):
    """A $1 post by card with an email opens a checkout and redirects to its payment page."""
    post = make_post(store, amount=100)
    response = client.post(post_url(post, "unlock/"), {"method": "card", "email": "new@example.com"})
    checkout = Checkout.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/checkout/{checkout.pk}/")
    assert (checkout.email, checkout.amount_total) == ("new@example.com", 100)
    bad = client.post(post_url(post, "unlock/"), {"method": "card", "email": "not an email"})
    assert bad.status_code == 400 and "Enter a valid email address." in text(bad)


def test_a_signed_out_card_unlock_reads_in_the_browser_that_paid(client, store):
    """After paying by card on the payment page, the same browser reads the post without signing in;
    another browser, and the checkout's id in a URL, do not."""
    from django.test import Client

    post = make_post(store, amount=100)
    response = client.post(post_url(post, "unlock/"), {"method": "card", "email": "new@example.com"})
    pay = client.post(response["Location"], {"payment_method": "sandbox_visa"})
    assert pay.status_code == 302
    assert 'Read the post</a>' in text(client.get(pay["Location"]))
    page = text(client.get(post_url(post)))
    assert SECRET in page and "Ask for your" not in page
    assert SECRET not in text(Client().get(post_url(post)))


def test_the_creator_reads_their_own_post_and_previews_drafts(client, store, creator):
    """Logged in as the store's owner, the full text shows without paying, drafts included."""
    draft = make_post(store, title="Draft", status="draft")
    client.force_login(creator)
    assert SECRET in text(client.get(post_url(draft)))
    assert Order.objects.count() == 0


def test_drafts_are_not_found_by_the_public(client, store, funded):
    """A draft post's page, unlock and refund answer 404."""
    draft = make_post(store, title="Draft", status="draft")
    sign_in(client)
    assert client.get(post_url(draft)).status_code == 404
    assert client.post(post_url(draft, "unlock/"), {"method": "wallet"}).status_code == 404
    assert client.post(post_url(draft, "refund/"), {"reason": "x"}).status_code == 404


def test_an_archived_post_stays_readable_for_those_who_unlocked_it(client, store, post, funded):
    """After archiving, the page is 404 for others but the reader who paid still reads it."""
    from stall.content.services import post_archive

    post_unlock(post=post, method="wallet", buyer=funded)
    post_archive(post=post)
    assert client.get(post_url(post)).status_code == 404
    sign_in(client)
    response = client.get(post_url(post))
    assert response.status_code == 200 and SECRET in text(response)


def test_every_page_of_another_store_is_not_found(client, store, post, funded):
    """A post's address under another store's path is 404: page, unlock, refund; as are unknown stores."""
    other = StoreFactory(slug="other")
    tip_jar_update(store=store, enabled=True)
    sign_in(client)
    post_unlock(post=post, method="wallet", buyer=funded)
    for method, path in [
        ("get", f"/s/other/posts/{post.slug}/"),
        ("post", f"/s/other/posts/{post.slug}/unlock/"),
        ("post", f"/s/other/posts/{post.slug}/refund/"),
        ("get", "/s/other/tips/new/"),
        ("post", "/s/other/tips/new/"),
        ("post", f"/s/nowhere/posts/{post.slug}/unlock/"),
        ("get", "/s/nowhere/posts/"),
        ("get", "/s/nowhere/posts/feed.xml"),
        ("post", "/s/nowhere/reader/sign-in/"),
    ]:
        response = getattr(client, method)(path, {"method": "wallet", "reason": "x", "preset": "100"})
        assert response.status_code == 404, path
    assert (Order.objects.count(), wallet_balance(funded)) == (1, 475)
    assert other.pk


# --- Lists and the feed ---------------------------------------------------------------------


def test_the_store_page_lists_published_posts_with_price_and_snippet(client, store, post):
    """Title, "$0.25" or "Free", the preview's words; never a paid ending or a draft."""
    make_post(store, title="A free one", amount=0, body="Free words for all.")
    make_post(store, title="Unfinished", status="draft")
    page = text(client.get(f"/s/{store.slug}/"))
    assert "Field notes" in page and "$0.25" in page and "The free opening. A second free paragraph." in page
    assert "A free one" in page and ">Free<" in page
    assert "Unfinished" not in page and SECRET not in page
    assert "Nothing for sale yet." not in page


def test_the_posts_page_lists_them_too(client, store, post):
    """/s/<store>/posts/ lists the published posts with a link to each."""
    page = text(client.get(f"/s/{store.slug}/posts/"))
    assert f'href="{post_url(post)}"' in page and SECRET not in page


def test_the_feed_carries_previews_and_never_paid_text(client, store, post):
    """The RSS items: the 25¢ post's preview and price, a free post in full, no draft."""
    make_post(store, title="Free post", amount=0, body="All of it.\n\nEvery word.\n\nThe free ending.")
    make_post(store, title="Draft post", status="draft")
    response = client.get(f"/s/{store.slug}/posts/feed.xml")
    feed = text(response)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/rss+xml")
    assert "The free opening." in feed and "Read on for $0.25." in feed
    assert "The free ending." in feed
    assert SECRET not in feed and "Draft post" not in feed
    assert feed.count("<item>") == 2


def test_a_posts_address_as_a_product_page_sends_readers_to_the_post(client, store, post):
    """/s/<store>/<post-slug>/ redirects to the post page instead of showing a Buy button."""
    response = client.get(f"/s/{store.slug}/{post.slug}/")
    assert (response.status_code, response["Location"]) == (302, post_url(post))


# --- Refunds on the page --------------------------------------------------------------------


def test_a_reader_refunds_an_unlock_from_the_post_page(client, store, post, funded):
    """The refund box needs a reason; with one, 25¢ is back in the wallet and the post is locked."""
    sign_in(client)
    client.post(post_url(post, "unlock/"), {"method": "wallet"})
    page = text(client.get(post_url(post)))
    assert "Ask for your $0.25 back" in page and "Refunds left this month: 3." in page
    response = client.post(post_url(post, "refund/"), {"reason": ""})
    assert response.status_code == 400 and "Tell the creator why you want your money back." in text(response)
    assert wallet_balance(funded) == 475
    response = client.post(post_url(post, "refund/"), {"reason": "Not what I expected"})
    assert response.status_code == 302
    page = text(client.get(post_url(post)))
    assert "$0.25 is back in your wallet. The post is locked again." in page
    assert SECRET not in page and "Read the rest for $0.25" in page
    assert (wallet_balance(funded), store_balance(store)) == (500, 0)
    assert_ledger_balanced()


def test_a_late_refund_is_refused_on_the_page(client, post, funded):
    """Past the window the box says so, and a forced POST is answered 409 with no money moved."""
    sign_in(client)
    order = post_unlock(post=post, method="wallet", buyer=funded).order
    Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - timedelta(hours=30))
    assert "Refunds can be asked for within a day of unlocking" in text(client.get(post_url(post)))
    response = client.post(post_url(post, "refund/"), {"reason": "Late"})
    assert response.status_code == 409 and "that time has passed for this post." in text(response)
    assert wallet_balance(funded) == 475


# --- Signing in -----------------------------------------------------------------------------


def test_the_sign_in_link_brings_the_reader_back_to_the_post(client, post, django_capture_on_commit_callbacks):
    """The emailed magic link signs the reader in and lands on the post they were reading."""
    response = client.post(f"/s/{post.store.slug}/reader/sign-in/", {"email": "Reader@Example.com", "next": post_url(post)})
    assert (response.status_code, response["Location"]) == (302, post_url(post))
    assert "A sign-in link is on its way to Reader@Example.com." in text(client.get(post_url(post)))
    link = re.search(r"http://\S+/library/enter/\S+", mail.outbox[0].body).group(0)
    assert mail.outbox[0].to == ["reader@example.com"]
    response = client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert (response.status_code, response["Location"]) == (302, post_url(post))
    assert "Unlock with one click" in text(client.get(post_url(post)))


def test_the_sign_in_form_never_sends_readers_elsewhere(client, post):
    """A next= to another site is replaced by the store page."""
    response = client.post(f"/s/{post.store.slug}/reader/sign-in/", {"email": "a@example.com", "next": "https://evil.example/"})
    assert response["Location"] == f"/s/{post.store.slug}/"


# --- The tip jar ----------------------------------------------------------------------------


def test_the_store_and_product_pages_show_the_tip_jar(client, store, product, jar):
    """The jar's title, presets, goal and the sign-in offer, on both pages."""
    for path in (f"/s/{store.slug}/", f"/s/{store.slug}/{product.slug}/"):
        page = text(client.get(path))
        assert "Leave a tip" in page and "$3.00" in page and "A new microphone" in page and "$0.00 of $20.00" in page
        assert "Sign in to tip from your wallet or tab" in page


def test_a_preset_tip_from_the_wallet(client, store, jar, funded):
    """Choosing $3 and "Tip from wallet" sends the tip with the message and returns to the page it came from."""
    sign_in(client)
    response = client.post(f"/s/{store.slug}/tips/new/", {
        "preset": "300", "message": "For the mic", "name": "Ana", "public": "on", "method": "wallet", "next": f"/s/{store.slug}/",
    })
    assert (response.status_code, response["Location"]) == (302, f"/s/{store.slug}/#tip-jar")
    tip = Tip.objects.get()
    assert (tip.amount, tip.message, tip.name, tip.public) == (300, "For the mic", "Ana", True)
    page = text(client.get(f"/s/{store.slug}/"))
    assert "Thank you for the $3.00 tip!" in page and "$3.00 of $20.00" in page and "For the mic" in page
    assert wallet_balance(funded) == 200


def test_a_custom_amount_wins_over_the_preset(client, store, jar, funded):
    """"0.75" typed in the box is a 75¢ tip even with $5 chosen; the checkbox off keeps the name private."""
    sign_in(client)
    client.post(f"/s/{store.slug}/tips/new/", {"preset": "500", "amount": "0.75", "name": "Shy", "method": "tab"})
    tip = Tip.objects.get()
    assert (tip.amount, tip.public, tip.order.payment.rail) == (75, False, "tab")
    page = text(client.get(f"/s/{store.slug}/"))
    assert "Shy" not in page and "Someone" in page


@pytest.mark.parametrize("form, message", [
    ({"amount": "0.10"}, "The smallest tip is $0.50."),
    ({"amount": "600"}, "The largest tip is $500.00."),
    ({"amount": "lots"}, "“lots” is not an amount."),
    ({"amount": ""}, "Choose an amount or type one."),
    ({"amount": "1", "message": "m" * 501}, "Keep the message to 500 characters (it has 501)."),
])
def test_bad_tips_are_shown_and_charge_nothing(client, store, jar, funded, form, message):
    """Each bad tip re-renders the jar with the message (400) and nothing is charged."""
    sign_in(client)
    response = client.post(f"/s/{store.slug}/tips/new/", {"method": "wallet", **form})
    assert response.status_code == 400
    assert message in text(response)
    assert (Tip.objects.count(), Checkout.objects.count(), wallet_balance(funded)) == (0, 0, 500)


def test_a_tip_from_an_empty_wallet_links_to_the_wallet(client, store, jar, reader):
    """WalletEmpty is shown with the top-up link."""
    sign_in(client)
    response = client.post(f"/s/{store.slug}/tips/new/", {"preset": "100", "method": "wallet"})
    assert response.status_code == 402 and '<a href="/wallet/">Top up your wallet</a>' in text(response)
    assert Checkout.objects.count() == 0


def test_a_signed_out_card_tip_goes_to_the_payment_page_and_becomes_a_tip(client, store, jar):
    """By card: the checkout's payment page, and once paid on it, a Tip with the message."""
    response = client.post(f"/s/{store.slug}/tips/new/", {
        "preset": "100", "message": "From a stranger", "public": "on", "email": "fan@example.com", "method": "card",
    })
    checkout = Checkout.objects.get()
    assert response["Location"] == f"/checkout/{checkout.pk}/"
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert response.status_code == 302
    assert "Thank you for the tip!" in text(client.get(response["Location"]))
    tip = Tip.objects.get()
    assert (tip.amount, tip.message, tip.public) == (100, "From a stranger", True)


def test_no_jar_no_tips(client, store):
    """A store without an enabled jar has no tip page."""
    assert client.get(f"/s/{store.slug}/tips/new/").status_code == 404
    tip_jar_update(store=store, enabled=False)
    assert client.post(f"/s/{store.slug}/tips/new/", {"preset": "100", "method": "card"}).status_code == 404


def test_the_library_shows_unlocked_posts_with_a_read_link(client, post, funded, store, jar):
    """Unlocked posts are in the library with "Read"; a tip says thank you."""
    post_unlock(post=post, method="wallet", buyer=funded)
    tip_send(store=store, amount=100, method="wallet", buyer=funded)
    sign_in(client)
    page = text(client.get("/library/"))
    assert f'href="{post_url(post)}">Read</a>' in page
    assert f"A tip. Thank you for supporting {store.name}." in page

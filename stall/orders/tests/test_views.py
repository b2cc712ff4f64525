"""The buyer's pages: buy, the sandbox card page, 3-D Secure, thank-you, library and downloads."""

import html
import re
import time
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from stall.catalog.models import PriceType
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.orders.models import DownloadCount, Order
from stall.orders.refunds import refund_create
from stall.orders.services import download_token
from stall.payments.models import Payment
from stall.testing import ProductFactory, StoreFactory, buy, product_with_file

pytestmark = pytest.mark.django_db

CONTENT = b"hello, reader\n"


def text(response) -> str:
    return html.unescape(response.content.decode())


def words(response) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def drain(response) -> bytes:
    """Read a streamed download to the end; the test client then closes the file, as a server would."""
    return b"".join(response.streaming_content)


def field_errors(response) -> list[str]:
    """The messages shown next to form fields."""
    blocks = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    return [html.unescape(e) for block in blocks for e in re.findall(r"<li>(.*?)</li>", block)]


def download_links(page: str) -> list[str]:
    return re.findall(r'href="(/d/[^"/]+/)"', page)


@pytest.fixture
def zine(store):
    return product_with_file(store=store, name="Zine", amount=300, content=CONTENT, download_limit=2)


@pytest.fixture
def pwyw(store):
    return ProductFactory(store=store, name="Tip jar", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=200, suggested_amount=500)


def open_checkout(store, product, email="buyer@example.com") -> Checkout:
    return checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])


# --- buy page ---------------------------------------------------------------------------------


def test_buy_page_asks_for_an_email_and_no_amount_for_a_fixed_price(client, zine):
    """A fixed-price product's buy page asks for an email only."""
    response = client.get(f"/buy/{zine.pk}/")
    assert response.status_code == 200
    page = text(response)
    assert 'name="email"' in page
    assert 'name="amount"' not in page
    assert '<p class="price">$3.00' in page


def test_buy_page_shows_the_pay_what_you_want_field_with_the_suggestion(client, pwyw):
    """A pay-what-you-want product's buy page asks for an amount, prefilled with the suggestion."""
    page = text(client.get(f"/buy/{pwyw.pk}/"))
    assert re.search(r'<input type="text" name="amount" value="5.00"[^>]*inputmode="decimal"', page)
    assert "Pay what you want (USD)" in page
    assert "Minimum $2.00." in page


def test_buy_page_of_an_unpublished_product_is_404(client, store):
    """A draft product cannot be bought through its buy page."""
    draft = ProductFactory(store=store, status="draft")
    assert client.get(f"/buy/{draft.pk}/").status_code == 404
    assert client.get("/buy/prod_nothing/").status_code == 404


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not-an-email", "amount": "5"}, "Enter a valid email address."),
        ({"email": "", "amount": "5"}, "This field is required."),
        ({"email": "b@example.com", "amount": "abc"}, "“abc” is not an amount."),
        ({"email": "b@example.com", "amount": ""}, "This field is required."),
        ({"email": "b@example.com", "amount": "-3"}, "Amount cannot be negative."),
        ({"email": "b@example.com", "amount": "2.555"}, "USD amounts have at most 2 decimal places."),
        ({"email": "b@example.com", "amount": "1.99"}, "The minimum for Tip jar is $2.00."),
    ],
)
def test_buy_page_refuses_bad_input_with_the_message_and_opens_no_checkout(client, pwyw, data, error):
    """Bad email or amount answers 400 with the message next to the field; no checkout is created."""
    response = client.post(f"/buy/{pwyw.pk}/", data)
    assert response.status_code == 400
    assert field_errors(response) == [error]
    assert Checkout.objects.count() == 0


def test_buy_page_opens_a_checkout_at_the_typed_amount(client, pwyw):
    """A valid amount opens a checkout for that amount and sends the buyer to the card page."""
    response = client.post(f"/buy/{pwyw.pk}/", {"email": "b@example.com", "amount": "$7.25"})
    checkout = Checkout.objects.get()
    assert (response.status_code, response["Location"]) == (302, f"/checkout/{checkout.pk}/")
    assert (checkout.amount_total, checkout.email) == (725, "b@example.com")


def test_buy_page_reads_amounts_in_the_buyers_language(client, store):
    """A Brazilian buyer's "1.000" is a thousand reais, not one."""
    brl_store = StoreFactory(owner=store.owner, currency="BRL")
    product = ProductFactory(store=brl_store, price_type=PriceType.PAY_WHAT_YOU_WANT, amount=100)
    client.post(f"/buy/{product.pk}/", {"email": "b@example.com", "amount": "1.000"}, headers={"accept-language": "pt-br"})
    assert Checkout.objects.get().amount_total == 100000


def test_free_product_goes_straight_to_its_download(client, store):
    """A free product needs no card: the buyer lands on the thank-you page with a download link."""
    free = product_with_file(store=store, name="Sampler", amount=0, content=CONTENT)
    response = client.post(f"/buy/{free.pk}/", {"email": "b@example.com"}, follow=True)
    checkout = Checkout.objects.get()
    assert response.redirect_chain == [(f"/checkout/{checkout.pk}/complete/", 302)]
    page = text(response)
    assert "Thank you!" in page
    assert len(download_links(page)) == 1
    assert Payment.objects.count() == 0


def test_free_pay_what_you_want_at_zero_is_free(client, store):
    """Typing 0 on a pay-what-you-want product with no minimum gets it free."""
    tip = product_with_file(store=store, name="Sampler", amount=0, price_type=PriceType.PAY_WHAT_YOU_WANT, content=CONTENT)
    response = client.post(f"/buy/{tip.pk}/", {"email": "b@example.com", "amount": "0"})
    checkout = Checkout.objects.get()
    assert response["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Order.objects.get().amount_total == 0


# --- sandbox card page ------------------------------------------------------------------------


def test_pay_page_shows_the_total_and_the_test_cards(client, store, zine):
    """The card page shows what is being paid, to whom the receipt goes, and the sandbox cards."""
    checkout = open_checkout(store, zine)
    page = text(client.get(f"/checkout/{checkout.pk}/"))
    assert "Pay $3.00" in page
    assert "Receipt to buyer@example.com" in page
    for method in ("sandbox_visa", "sandbox_3ds", "sandbox_declined", "sandbox_insufficient_funds"):
        assert f'value="{method}"' in page


def test_paying_with_a_card_lands_on_the_thank_you_page_with_downloads(client, store, zine):
    """sandbox_visa pays and the thank-you page lists the order's download links."""
    checkout = open_checkout(store, zine)
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}, follow=True)
    assert response.redirect_chain == [(f"/checkout/{checkout.pk}/complete/", 302)]
    page = text(response)
    order = Order.objects.get()
    assert f"Order {order.pk} · $3.00. A receipt is on its way to buyer@example.com" in words(response)
    assert "zine.txt" in page
    assert len(download_links(page)) == 1
    # Coming back to the card page of a paid checkout goes to the thank-you page, never a second charge.
    assert client.get(f"/checkout/{checkout.pk}/")["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}).status_code == 302
    assert Payment.objects.count() == 1


def test_declined_card_shows_the_reason_and_keeps_the_checkout_open(client, store, zine):
    """A declined card shows the bank's reason on the card page; another card can then pay."""
    checkout = open_checkout(store, zine)
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_declined"})
    assert response.status_code == 400
    assert '<div class="alert alert-error" role="alert">Your card was declined.</div>' in response.content.decode()
    checkout.refresh_from_db()
    assert checkout.status == "open"
    # Reloading the page still says what went wrong.
    assert "Your card was declined. Try another card." in text(client.get(f"/checkout/{checkout.pk}/"))
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert response["Location"] == f"/checkout/{checkout.pk}/complete/"


def test_pay_page_refuses_an_unknown_card(client, store, zine):
    """A card that is not on the list is a form error, not a charge."""
    checkout = open_checkout(store, zine)
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "visa"})
    assert response.status_code == 400
    assert field_errors(response) == ["Select a valid choice. visa is not one of the available choices."]
    assert Payment.objects.count() == 0


def test_card_page_of_an_expired_checkout_says_so_and_charges_nothing(client, store, zine):
    """An expired checkout's card page says it expired; posting to it charges nothing."""
    checkout = open_checkout(store, zine)
    Checkout.objects.filter(pk=checkout.pk).update(expires_at=timezone.now())
    assert "This checkout has expired." in text(client.get(f"/checkout/{checkout.pk}/"))
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert Payment.objects.count() == 0


def test_unknown_checkout_pages_are_404(client):
    """Made-up checkout ids answer 404 on every checkout page."""
    for path in ("/checkout/chk_nothing/", "/checkout/chk_nothing/authenticate/", "/checkout/chk_nothing/complete/"):
        assert client.get(path).status_code == 404


def test_thank_you_page_of_an_unpaid_checkout_goes_to_the_card_page(client, store, zine):
    """The thank-you page cannot be reached before paying."""
    checkout = open_checkout(store, zine)
    assert client.get(f"/checkout/{checkout.pk}/complete/")["Location"] == f"/checkout/{checkout.pk}/"


# --- 3-D Secure -------------------------------------------------------------------------------


def test_3ds_card_asks_the_bank_then_approving_pays(client, store, zine):
    """sandbox_3ds sends the buyer to the bank's page; confirming there completes the purchase."""
    checkout = open_checkout(store, zine)
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_3ds"})
    assert response["Location"] == f"/checkout/{checkout.pk}/authenticate/"
    # The card page now sends the buyer back to the bank instead of offering a second charge.
    assert client.get(f"/checkout/{checkout.pk}/")["Location"] == f"/checkout/{checkout.pk}/authenticate/"
    page = words(client.get(f"/checkout/{checkout.pk}/authenticate/"))
    assert f"Your bank asks you to confirm a payment of $3.00 to {store.name}." in page
    response = client.post(f"/checkout/{checkout.pk}/authenticate/", {"decision": "approve"})
    assert response["Location"] == f"/checkout/{checkout.pk}/complete/"
    assert Payment.objects.get().status == "succeeded"
    assert Order.objects.count() == 1


def test_3ds_cancel_returns_to_the_card_page_with_the_reason(client, store, zine):
    """Cancelling at the bank fails the payment, shows why, and leaves the checkout payable."""
    checkout = open_checkout(store, zine)
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_3ds"})
    response = client.post(f"/checkout/{checkout.pk}/authenticate/", {"decision": "decline"})
    assert response.status_code == 402
    assert "The card's 3-D Secure check was not completed." in text(response)
    assert Payment.objects.get().status == "failed"
    checkout.refresh_from_db()
    assert checkout.status == "open"
    # With nothing waiting at the bank, the bank page sends the buyer back to the card page.
    assert client.get(f"/checkout/{checkout.pk}/authenticate/")["Location"] == f"/checkout/{checkout.pk}/"
    assert client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})["Location"] == (
        f"/checkout/{checkout.pk}/complete/"
    )


# --- downloads --------------------------------------------------------------------------------


def first_download_link(client, checkout) -> str:
    return download_links(text(client.get(f"/checkout/{checkout.pk}/complete/")))[0]


def paid_checkout(client, store, product) -> Checkout:
    checkout = open_checkout(store, product)
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    return checkout


def test_download_link_streams_the_file_and_counts(client, store, zine):
    """The link streams the file's bytes as an attachment and counts one download."""
    link = first_download_link(client, paid_checkout(client, store, zine))
    response = client.get(link)
    assert response.status_code == 200
    assert response.streaming
    assert drain(response) == CONTENT
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Length"] == str(len(CONTENT))
    assert response["Content-Disposition"] == 'attachment; filename="zine.txt"'
    assert response["Cache-Control"] == "private, no-store"
    assert DownloadCount.objects.get().count == 1


def test_download_past_the_limit_is_the_403_page(client, store, zine):
    """After download_limit downloads (2 here) the link answers a 403 page saying why."""
    link = first_download_link(client, paid_checkout(client, store, zine))
    for _ in range(2):
        response = client.get(link)
        assert response.status_code == 200
        assert drain(response) == CONTENT
    response = client.get(link)
    assert response.status_code == 403
    assert "This file has been downloaded as many times as the purchase allows." in text(response)
    assert DownloadCount.objects.get().count == 2


def test_tampered_download_link_is_the_404_page(client, store, zine):
    """A link with a changed signature answers 404 and streams nothing."""
    link = first_download_link(client, paid_checkout(client, store, zine))
    token = link.split("/")[2]
    response = client.get(f"/d/{token[:-2]}xx/")
    assert response.status_code == 404
    assert "This download link is not valid." in text(response)
    assert not DownloadCount.objects.exists()


def test_expired_download_link_is_the_410_page(client, store, zine):
    """A link older than its lifetime answers 410 and sends the buyer to their library."""
    paid_checkout(client, store, zine)
    entitlement = Order.objects.get().entitlements.get()
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 2 * 24 * 3600):
        token = download_token(entitlement=entitlement, file=zine.files.get())
    response = client.get(f"/d/{token}/")
    assert response.status_code == 410
    page = text(response)
    assert "This download link has expired. Open your library for a fresh one." in page
    assert 'href="/library/"' in page


def test_refunded_order_link_is_the_403_page(client, store, zine):
    """After a full refund the order's links answer 403: the purchase was refunded."""
    link = first_download_link(client, paid_checkout(client, store, zine))
    refund_create(store=store, order_id=Order.objects.get().pk)
    response = client.get(link)
    assert response.status_code == 403
    assert "This purchase was refunded, so its downloads are no longer available." in text(response)
    assert "This purchase was refunded." in text(client.get(f"/checkout/{Order.objects.get().checkout_id}/complete/"))


# --- library ----------------------------------------------------------------------------------


def magic_link_from(message) -> str:
    return urlsplit(re.search(r"(http://\S+/library/enter/\S+/)", message.body).group(1)).path


def test_library_link_from_the_receipt_lists_purchases_from_every_store(client, store, zine, django_capture_on_commit_callbacks):
    """The receipt's link signs the buyer in; the library lists what they bought in two stores, with links."""
    other_store = StoreFactory(name="Other shop")
    poster = product_with_file(store=other_store, name="Poster", content=b"poster")
    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=zine, email="reader@example.com")
        buy(store=other_store, product=poster, email="reader@example.com")
    buy(store=store, product=zine, email="stranger@example.com")
    assert [m.to for m in mail.outbox] == [["reader@example.com"], ["reader@example.com"]]

    response = client.get(magic_link_from(mail.outbox[0]), follow=True)
    assert response.redirect_chain == [("/library/", 302)]
    page = text(response)
    assert "Bought with reader@example.com" in page
    assert "<strong>Zine</strong>" in page and "<strong>Poster</strong>" in page
    assert f"{store.name} · order" in page and "Other shop · order" in page
    assert page.count("0 of 2 downloads used") == 1
    links = download_links(page)
    assert len(links) == 2
    contents = set()
    for link in links:
        contents.add(drain(client.get(link)))
    assert contents == {CONTENT, b"poster"}


def test_library_shows_used_downloads_and_the_limit(client, store, zine, django_capture_on_commit_callbacks):
    """The library counts downloads per file and stops offering the link at the limit."""
    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=zine, email="reader@example.com")
    client.get(magic_link_from(mail.outbox[0]))
    link = download_links(text(client.get("/library/")))[0]
    for _ in range(2):
        drain(client.get(link))
    page = text(client.get("/library/"))
    assert "2 of 2 downloads used" in page
    assert "Limit reached" in page
    assert download_links(page) == []


@pytest.mark.parametrize("token", ["nonsense", "expired"])
def test_bad_or_expired_magic_link_is_a_400_page_with_the_form(client, token):
    """A broken or week-old sign-in link answers 400 with the reason and the form to ask for a new one."""
    if token == "expired":
        from stall.accounts.services import buyer_magic_link

        with mock.patch("django.core.signing.time.time", return_value=time.time() - 8 * 24 * 3600):
            token = urlsplit(buyer_magic_link(email="reader@example.com")).path.split("/")[3]
    response = client.get(f"/library/enter/{token}/")
    assert response.status_code == 400
    page = text(response)
    assert "This sign-in link is not valid or has expired. Ask for a new one below." in page
    assert 'name="email"' in page
    assert "buyer_email" not in client.session


def test_library_link_form_answers_the_same_for_anyone(client, store, zine):
    """Asking for a link says the same for a customer and a stranger, so the page reveals no customers."""
    buy(store=store, product=zine, email="reader@example.com")
    known = client.post("/library/", {"email": "reader@example.com"})
    unknown = client.post("/library/", {"email": "nobody@example.com"})
    assert (known.status_code, unknown.status_code) == (200, 200)
    assert known.content == unknown.content
    assert "If that email bought anything here, a sign-in link is on its way." in text(known)
    assert sorted(m.to[0] for m in mail.outbox) == ["nobody@example.com", "reader@example.com"]
    assert all(m.subject == "Your library" for m in mail.outbox)


def test_library_link_form_refuses_a_bad_email(client):
    """An address that is not an email is a 400 with the field's message."""
    response = client.post("/library/", {"email": "nope"})
    assert response.status_code == 400
    assert field_errors(response) == ["Enter a valid email address."]
    assert mail.outbox == []


def test_library_sign_out_forgets_the_buyer(client, store, zine, django_capture_on_commit_callbacks):
    """Signing out of the library drops the buyer from the session."""
    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=zine, email="reader@example.com")
    client.get(magic_link_from(mail.outbox[0]))
    assert "Bought with reader@example.com" in text(client.get("/library/"))
    assert client.post("/library/logout/")["Location"] == "/library/"
    page = text(client.get("/library/"))
    assert "Bought with" not in page
    assert "Email me a link" in page

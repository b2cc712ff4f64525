"""A Korean buyer and a Brazilian reader, each in a Chromium that speaks their language.

The browser sends its language the way a real one does (Playwright's ``locale`` sets
``Accept-Language`` and ``navigator.language``). The test finds buttons and checks messages by their
translated text, taken from Stall's own catalogs, and asserts each one differs from the English, so
the journey fails if a page falls back to English.
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import translation
from playwright.sync_api import expect

from stall.accounts.services import buyer_for_email
from stall.content.services import post_create
from stall.core.money import format_money
from stall.orders.models import Order
from stall.payments.rails.wallet import wallet_for
from stall.testing import StoreFactory, UserFactory, product_with_file

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def say(language: str, english: str, **values) -> str:
    """``english`` as Stall shows it in ``language``, placeholders filled in; never the English."""
    with translation.override(language):
        text = translation.gettext(english)
    assert text != english, f"{english!r} has no {language} translation"
    return text % values if values else text


def money(amount: int, currency: str, language: str) -> str:
    return format_money(amount, currency, language)


def sign_in_from_email(page, live_server, email: str, language: str) -> None:
    page.get_by_role("link", name=say(language, "Sign in"), exact=True).click()
    expect(page).to_have_url(re.compile(r"/library/\?next="))
    page.get_by_label(say(language, "Email you bought with")).fill(email)
    page.get_by_role("button", name=say(language, "Email me a link")).click()
    expect(page.get_by_role("status")).to_contain_text(say(language, "If that email bought anything here, a sign-in link is on its way. It works once, within a week."))
    message = [m for m in mail.outbox if m.to == [email]][-1]
    assert message.subject == say(language, "Your library")
    link = urlsplit(re.search(r"http://\S+/library/enter/\S+", message.body).group(0))
    page.goto(f"{live_server.url}{link.path}?{link.query}")


@pytest.fixture
def korean(browser):
    context = browser.new_context(locale="ko-KR", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def brazilian(browser):
    context = browser.new_context(locale="pt-BR", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    yield context
    context.close()


def test_a_korean_buyer_pays_3000_won_from_a_10000_won_top_up(live_server, korean, shot):
    """With a Korean browser: sign in by the emailed link, add ₩10,000 to the wallet with the test
    card, buy a ₩3,000 download from the wallet, download it, and see ₩7,000 left, all in Korean."""
    store = StoreFactory(owner=UserFactory(), name="Seoul Sketches", slug="seoul", currency="KRW")
    pack = product_with_file(store=store, name="Brush pack", amount=3000, content=b"brushes\n")
    page = korean.new_page()
    page.goto(f"{live_server.url}/s/seoul/")
    expect(page.locator("html")).to_have_attribute("lang", "ko")
    sign_in_from_email(page, live_server, "minji@example.com", "ko")
    expect(page).to_have_url(re.compile(r"/s/seoul/$"))
    shot(page, "1-store-signed-in")

    page.get_by_role("link", name=say("ko", "Wallet"), exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text(money(0, "KRW", "ko"))
    # KRW's own presets (₩5,000 / ₩10,000 / ₩20,000), not a dollar's 5, 10 and 20 written in won.
    ten_thousand = money(10_000, "KRW", "ko")
    page.get_by_label(re.compile("4242")).first.check()
    page.get_by_role("button", name=say("ko", "Add %(preset)s", preset=ten_thousand)).click()
    expect(page.get_by_text(say("ko", "Added %(amount)s to your wallet.", amount=ten_thousand))).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text(ten_thousand)
    shot(page, "2-topped-up")

    page.goto(f"{live_server.url}/s/seoul/{pack.slug}/")
    expect(page.get_by_text(money(3000, "KRW", "ko")).first).to_be_visible()
    page.get_by_role("link", name=say("ko", "Buy"), exact=True).click()
    page.get_by_label(say("ko", "Your email"), exact=True).fill("minji@example.com")
    page.get_by_role("button", name=say("ko", "Continue")).click()
    expect(page).to_have_url(re.compile(r"/checkout/chk_\w+/$"))
    pay = page.get_by_role("button", name=say("ko", "Pay from wallet (balance %(balance)s)", balance=ten_thousand))
    shot(page, "3-pay")
    pay.click()
    expect(page.get_by_role("heading", name=say("ko", "Thank you!"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name=say("ko", "Download")).first.click()
    assert Path(download.value.path()).read_bytes() == b"brushes\n"
    shot(page, "4-thank-you")

    page.get_by_role("link", name=say("ko", "Wallet"), exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text(money(7000, "KRW", "ko"))
    shot(page, "5-wallet-after")
    buyer = buyer_for_email(email="minji@example.com")
    assert wallet_for(buyer=buyer, currency="KRW").account.balance == 7000
    order = Order.objects.get(store=store)
    assert (order.payment.rail, order.amount_total, order.currency) == ("wallet", 3000, "KRW")
    # Paid from the wallet, the wallet's history is the receipt: the one email was the sign-in link.
    assert [m.subject for m in mail.outbox if m.to == ["minji@example.com"]] == [say("ko", "Your library")]


def test_a_brazilian_reader_unlocks_a_post_in_portuguese(live_server, brazilian, shot):
    """With a Portuguese (Brazil) browser: a reader signs in from a paid post's paywall, tops up
    R$ 25,00, unlocks the post with one click and reads it; prices in reais, words in Portuguese."""
    store = StoreFactory(owner=UserFactory(), name="Cadernos do Rio", slug="rio", currency="BRL")
    post_create(store=store, title="A feira de domingo", body="Primeiro parágrafo livre.\n\n<!-- more -->\n\nO resto, para quem desbloquear.",
                amount=50, status="published", slug="a-feira-de-domingo")
    page = brazilian.new_page()
    page.goto(f"{live_server.url}/s/rio/posts/a-feira-de-domingo/")
    expect(page.locator("html")).to_have_attribute("lang", "pt-br")
    expect(page.get_by_text("Primeiro parágrafo livre.")).to_be_visible()
    expect(page.get_by_text("O resto, para quem desbloquear.")).to_have_count(0)
    shot(page, "1-paywall")
    sign_in_from_email(page, live_server, "joana@example.com", "pt-br")

    page.get_by_role("link", name=say("pt-br", "Wallet"), exact=True).click()
    # BRL's own presets start at R$ 25,00.
    preset = money(2500, "BRL", "pt-br")
    page.get_by_label(re.compile("4242")).first.check()
    page.get_by_role("button", name=say("pt-br", "Add %(preset)s", preset=preset)).click()
    expect(page.get_by_text(say("pt-br", "Added %(amount)s to your wallet.", amount=preset))).to_be_visible()
    shot(page, "2-topped-up")

    page.goto(f"{live_server.url}/s/rio/posts/a-feira-de-domingo/")
    page.get_by_role("button", name=say("pt-br", "Unlock with one click")).click()
    expect(page.get_by_text("O resto, para quem desbloquear.")).to_be_visible()
    expect(page.get_by_text(say("pt-br", "Unlocked")).first).to_be_visible()
    shot(page, "3-unlocked")

    page.get_by_role("link", name=say("pt-br", "Wallet"), exact=True).click()
    expect(page.get_by_test_id("balance")).to_have_text(money(2450, "BRL", "pt-br"))
    order = Order.objects.get(store=store)
    assert (order.amount_total, order.currency, order.payment.rail) == (50, "BRL", "wallet")

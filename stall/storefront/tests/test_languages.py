"""A Korean and a Brazilian buyer: every buyer page, its errors and its emails in their language.

The check is data-driven. The English words of the catalog (every word of every msgid) that the
language's own translations never use are "English" for that language; a page fails when its
visible text (text nodes and the labels a screen reader speaks), once the test's own data (store,
product and post names, emails, ids) is taken out, still holds one of them. That catches a string
missing from the .po, an empty msgstr, and a string never marked for translation, which is
English and so made of the same words. For Korean, stricter: no Latin word at all but a short
list of names (Stall, Stripe, Visa...).
"""

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from babel.messages.pofile import read_po
from django.core import mail
from django.utils import translation

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.catalog.models import PriceType
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create
from stall.content.services import post_create, tip_jar_update
from stall.core.catalogs import LOCALE_DIR
from stall.integrations.services import api_key_create
from stall.memberships.tiers import tier_create, tier_gates_set
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.testing import ApiClient, ProductFactory, StoreFactory, product_with_file
from stall.wallets.services import wallet_top_up

LANGUAGES = {"ko": "ko", "pt-br": "pt_BR"}
# Latin words a Korean page may show: names of things, and the language switch's own names.
KOREAN_PAGE_LATIN = {
    "stall", "stripe", "visa", "rss", "utc", "javascript", "sats", "secure", "paymentmethod", "pm",
    "english", "português", "brasil", "brasileiro", "usd", "krw", "us", "nul", "api",
}
BODY = "Ondo kalimba.\n\nVeru sokal.\n\nTaro menik vasu."


def _catalog(locale: str):
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "django.po").open("rb") as source:
        return read_po(source)


def _texts(value) -> list[str]:
    """A message's id or string: one text, or (a plural message) a tuple of them."""
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _words(value) -> set[str]:
    text = re.sub(r"%\(\w+\)[sd]|<[^>]+>", " ", " ".join(_texts(value)))
    return {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]+(?:'[a-z]+)?", text) if len(w) > 2}


def english_words(locale: str) -> frozenset[str]:
    """Words of the English msgids that no translation in ``locale`` uses."""
    catalog = _catalog(locale)
    english = set().union(*(_words(m.id) for m in catalog if m.id))
    translated = set().union(*(_words(m.string) for m in catalog if m.id and m.string))
    return frozenset(english - translated)


class _Visible(HTMLParser):
    """Text a reader sees or hears: text nodes (not script, style or code) and spoken attributes."""

    SPOKEN = ("aria-label", "placeholder", "title", "alt")

    def __init__(self):
        super().__init__()
        self.parts, self._hidden = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "code", "textarea"):
            self._hidden += 1
        self.parts.extend(value for name, value in attrs if name in self.SPOKEN and value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "code", "textarea"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def untranslated(text: str, language: str, data: list[str]) -> list[str]:
    """The English left in ``text`` once the test's own ``data`` is taken out."""
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    found = sorted({w for w in _words(text) if w in english_words(LANGUAGES[language])})
    if language == "ko":
        latin = {w.lower() for w in re.findall(r"[A-Za-zÀ-ÿ]{2,}", text)} - KOREAN_PAGE_LATIN
        found = sorted(set(found) | latin)
    return found


def assert_translated(html: str, language: str, data: list[str], where: str) -> None:
    left = untranslated(visible_text(html), language, data)
    assert not left, f"{where} in {language} still shows English: {left}"


@pytest.fixture
def shop(db):
    """A store with a download, a pay-what-you-want product, a 25¢ post and a tip jar; a buyer
    with a wallet, a tab, a paid order and an unlock."""
    store = StoreFactory(name="Ondo Kalimba", slug="ondo")
    download = product_with_file(store=store, name="Veru", amount=300)
    pwyw = ProductFactory(store=store, name="Sokal", slug="sokal", price_type=PriceType.PAY_WHAT_YOU_WANT, amount=100)
    post = post_create(store=store, title="Taro menik", amount=25, body=BODY, status="published")
    tip_jar_update(store=store, enabled=True, goal_amount=2000, goal_title="Vasu")
    buyer = buyer_for_email(email="mina@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    for product, method in ((download, "wallet"), (pwyw, "tab")):
        checkout = checkout_create(store=store, email=buyer.email, items=[CheckoutItem(product_id=product.pk, amount=product.amount)])
        checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer)
    data = [store.name, download.name, pwyw.name, post.title, *BODY.split("\n\n"), "Vasu", buyer.email,
            "zine.txt", "hello.txt", *(o.pk for o in Order.objects.all())]
    return {"store": store, "download": download, "pwyw": pwyw, "post": post, "buyer": buyer, "data": data}


def sign_in(client, email):
    assert client.get(urlsplit(buyer_magic_link(email=email)).path).status_code == 302


def _get(client, path, language, expect=200):
    response = client.get(path, headers={"accept-language": language}, follow=False)
    assert response.status_code == expect, (path, response.status_code)
    return response.content.decode()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_buyer_page_is_in_the_buyers_language(client, shop, language):
    """Store, product, buy, post with its paywall, pay, complete, wallet, tab, library and the
    sign-in pages, signed out and signed in: no English left."""
    store, data = shop["store"], shop["data"]
    data += [f.name for f in shop["download"].files.all()]
    slug = store.slug
    pages = {
        "store": f"/s/{slug}/",
        "product": f"/s/{slug}/{shop['download'].slug}/",
        "buy": f"/buy/{shop['pwyw'].pk}/",
        "post": f"/s/{slug}/posts/{shop['post'].slug}/",
        "posts": f"/s/{slug}/posts/",
        "tip": f"/s/{slug}/tips/new/",
        "library sign-in": "/library/",
    }
    for where, path in pages.items():
        assert_translated(_get(client, path, language), language, data, where)
    assert_translated(_get(client, "/nowhere/", language, expect=404), language, data, "404")

    # A checkout's hosted payment page, signed out, then paid and completed.
    client.post(f"/buy/{shop['download'].pk}/", {"email": "ana@example.com"}, headers={"accept-language": language})
    checkout = Checkout.objects.latest("created_at")
    data.append(checkout.pk)
    assert_translated(_get(client, f"/checkout/{checkout.pk}/", language), language, data + ["ana@example.com"], "pay")

    sign_in(client, shop["buyer"].email)
    signed_in = {
        "store": f"/s/{slug}/", "post": f"/s/{slug}/posts/{shop['post'].slug}/", "pay": f"/checkout/{checkout.pk}/",
        "wallet": "/wallet/", "tab": "/wallet/tab/", "library": "/library/",
    }
    for where, path in signed_in.items():
        assert_translated(_get(client, path, language), language, data + ["ana@example.com"], f"{where} (signed in)")
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}, headers={"accept-language": language})
    order = Order.objects.get(checkout=checkout)
    data.append(order.pk)
    assert_translated(_get(client, f"/checkout/{checkout.pk}/complete/", language), language, data + ["ana@example.com"], "complete")


@pytest.mark.parametrize(
    ("language", "minimum"), [("ko", "Sokal의 최소 금액은 US$1.00입니다."), ("pt-br", "O mínimo para Sokal é US$\xa01,00.")]
)
def test_errors_speak_the_language_and_write_money_its_way(client, shop, language, minimum):
    """An amount under a pay-what-you-want minimum is refused in the buyer's words, with the
    amount written the way the rest of the page writes it (not "$1.00" beside "US$ 1,00")."""
    response = client.post(f"/buy/{shop['pwyw'].pk}/", {"email": "ana@example.com", "amount": "0,5" if language == "pt-br" else "0.5"},
                           headers={"accept-language": language})
    page = response.content.decode()
    assert response.status_code == 400
    assert minimum in page
    assert_translated(page, language, shop["data"] + ["ana@example.com"], "buy with an error")


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_declined_card_is_explained_in_the_buyers_language(client, shop, language):
    """The rail's decline is kept in English on the checkout (the API's), and the page shows it translated."""
    client.post(f"/buy/{shop['download'].pk}/", {"email": "ana@example.com"}, headers={"accept-language": language})
    checkout = Checkout.objects.latest("created_at")
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_declined"}, headers={"accept-language": language})
    checkout.refresh_from_db()
    assert checkout.last_error_message == "Your card was declined."
    page = _get(client, f"/checkout/{checkout.pk}/", language)
    assert {"ko": "카드가 거절되었습니다.", "pt-br": "Seu cartão foi recusado."}[language] in page
    assert_translated(page, language, shop["data"] + ["ana@example.com", checkout.pk], "pay after a decline")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_receipt_is_written_in_the_language_the_buyer_bought_in(client, shop, language, django_capture_on_commit_callbacks):
    """Bought from a Korean or Portuguese page, paid later (the receipt is sent by the worker,
    outside any request): subject, text and HTML in that language, money written its way."""
    client.post(f"/buy/{shop['download'].pk}/", {"email": "ana@example.com"}, headers={"accept-language": language})
    checkout = Checkout.objects.latest("created_at")
    assert checkout.language == language
    mail.outbox.clear()
    # As the worker sends it: English active (the test client's last request left the buyer's on).
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    (message,) = mail.outbox
    order = Order.objects.get(checkout=checkout)
    data = shop["data"] + ["ana@example.com", order.pk]
    assert message.subject == {"ko": "Ondo Kalimba 영수증", "pt-br": "Seu recibo de Ondo Kalimba"}[language]
    assert {"ko": "US$3.00", "pt-br": "US$\xa03,00"}[language] in message.body
    assert not untranslated(re.sub(r"https?://\S+", " ", message.body), language, data), message.body
    assert_translated(message.alternatives[0][0], language, data, "receipt email")


def test_the_receipt_of_an_api_checkout_is_english(client, shop):
    """A checkout made through the API (English, like Stripe's) gets an English receipt."""
    api = ApiClient(client, api_key_create(store=shop["store"], name="tests")[1])
    body = '{"email": "ana@example.com", "items": [{"product": "%s"}]}' % shop["download"].pk
    response = client.post("/api/v1/checkouts", data=body, content_type="application/json",
                           headers={**api._headers(), "accept-language": "ko"})
    assert response.status_code == 200, response.content
    assert Checkout.objects.get(pk=response.json()["id"]).language == ""


@pytest.mark.parametrize("language", LANGUAGES)
def test_sign_in_emails_are_in_the_language_of_the_page_they_were_asked_from(client, shop, language):
    """The post's "Email me a sign-in link" and the library's link: subject and body translated."""
    mail.outbox.clear()
    client.post(f"/s/{shop['store'].slug}/reader/sign-in/", {"email": "ana@example.com", "next": "/"}, headers={"accept-language": language})
    client.post("/library/", {"email": shop["buyer"].email}, headers={"accept-language": language})
    reader, library = mail.outbox
    assert reader.subject == {"ko": "Ondo Kalimba에서 읽으려면 로그인하세요", "pt-br": "Entre para ler em Ondo Kalimba"}[language]
    assert library.subject == {"ko": "내 보관함", "pt-br": "Sua biblioteca"}[language]
    for message in (reader, library):
        assert not untranslated(re.sub(r"https?://\S+", " ", message.body), language, shop["data"]), message.body
        assert_translated(message.alternatives[0][0], language, shop["data"], f"email {message.subject}")


def test_the_language_switch_is_remembered(client, shop):
    """The footer's switch sets a cookie: the next page is Portuguese whatever the browser asks."""
    page = _get(client, f"/s/{shop['store'].slug}/", "ko")
    assert 'name="language" value="pt-br"' in page and "Português" in page
    response = client.post("/i18n/setlang/", {"language": "pt-br", "next": f"/s/{shop['store'].slug}/"})
    assert response.status_code == 302 and response["Location"] == f"/s/{shop['store'].slug}/"
    page = _get(client, f"/s/{shop['store'].slug}/", "ko")
    assert '<html lang="pt-br">' in page and "Feito com Stall" in page


def test_english_stays_the_default_and_the_api_stays_english(client, shop, api):
    """No Accept-Language: English. The API answers in English even to a Korean client."""
    assert "Powered by Stall" in _get(client, f"/s/{shop['store'].slug}/", "")
    response = api.client.post(
        "/api/v1/checkouts", data='{"email": "ana@example.com", "items": [{"product": "prod_nope"}]}',
        content_type="application/json", headers={**api._headers(), "accept-language": "ko"},
    )
    assert response.json()["error"]["message"] == "No such product, or it is not for sale."


@pytest.mark.parametrize("locale", LANGUAGES.values())
def test_the_catalogs_are_complete_and_their_placeholders_match(locale):
    """Every message translated, none fuzzy, and Babel's checks pass: the same %(name)s
    placeholders in the translation as in the English."""
    catalog = _catalog(locale)
    messages = [m for m in catalog if m.id]
    assert len(messages) > 400
    assert [m.id for m in messages if not all(_texts(m.string))] == []
    assert [m.id for m in messages if m.fuzzy] == []
    assert [(m.id, [str(e) for e in errors]) for m, errors in catalog.check()] == []
    for m in messages:
        english, translations = _texts(m.id)[-1], _texts(m.string)
        for text in translations:
            assert set(re.findall(r"%\(\w+\)[sd]", english)) == set(re.findall(r"%\(\w+\)[sd]", text)), m.id
            assert sorted(re.findall(r"</?\w+", english)) == sorted(re.findall(r"</?\w+", text)), m.id


def test_a_sign_in_email_sent_by_the_worker_keeps_the_language_it_was_asked_in(db):
    """In the worker no request sets a language: the task's own ``language`` does."""
    from stall.content.tasks import reader_sign_in_link_send
    from stall.orders.tasks import library_link_send

    mail.outbox.clear()
    with translation.override("en"):
        library_link_send.call_local("ana@example.com", "", language="ko")
        reader_sign_in_link_send.call_local("ana@example.com", "/", "Ondo", language="pt-br")
    assert [m.subject for m in mail.outbox] == ["내 보관함", "Entre para ler em Ondo"]


# --- Memberships, allowances and the wallet's emails ---------------------------------------------

TIER_NAMES = ["Kova", "Lume", "Sela"]


def _tiers(store):
    """A tier with a monthly and a yearly price, a trial and cap-to-subscribe; one with a monthly
    price only; a free one."""

    kova = tier_create(store=store, name="Kova", description="Ondo veru.", benefits=["Sokal menik"],
                       prices=[{"interval": "month", "amount": 500}, {"interval": "year", "amount": 5000}],
                       trial_days=7, cap_to_subscribe=True)
    lume = tier_create(store=store, name="Lume", prices=[{"interval": "month", "amount": 300}])
    sela = tier_create(store=store, name="Sela")
    return kova, lume, sela


def _post(client, path, data, language, expect=302):
    response = client.post(path, data, headers={"accept-language": language}, follow=False)
    assert response.status_code == expect, (path, response.status_code, response.content[:2000])
    return response


@pytest.mark.parametrize("language", LANGUAGES)
def test_membership_and_allowance_pages_are_in_the_buyers_language(client, shop, language):
    """The store's tiers, a post's paywall offering a capped tier, a tier's join page (signed out,
    with an error, signed in, as a member), the welcome, the
    member's memberships page (with a refused change and after cancelling), and the allowance
    pages (signed out, granting with a mistake, the list, revoked): no English left."""
    store, data = shop["store"], shop["data"] + TIER_NAMES + ["Ondo veru.", "Sokal menik"]
    kova, lume, sela = _tiers(store)
    tier_gates_set(tier=kova, product_ids=[shop["post"].product_id])
    slug = store.slug
    post = f"/s/{slug}/posts/{shop['post'].slug}/"
    assert_translated(_get(client, f"/s/{slug}/", language), language, data, "store with tiers")
    assert_translated(_get(client, post, language), language, data, "post gated to a tier")
    for tier in (kova, lume, sela):
        assert_translated(_get(client, f"/s/{slug}/join/{tier.pk}/", language), language, data, f"join {tier.name}")
    page = _post(client, f"/s/{slug}/join/{lume.pk}/", {"method": "card"}, language, expect=400).content.decode()
    assert_translated(page, language, data, "join with an error")
    for path in ("/wallet/allowances/", f"/s/{slug}/allowance/"):
        assert_translated(_get(client, path, language), language, data, f"{path} signed out")

    sign_in(client, shop["buyer"].email)
    page = _get(client, post, language)
    assert {"ko": "이번 달 US$5.00 중 US$0.00 결제함", "pt-br": "US$\xa00,00 de US$\xa05,00 pagos este mês"}[language] in page
    assert_translated(page, language, data, "post gated to a capped tier (signed in)")
    for tier in (kova, lume):
        assert_translated(_get(client, f"/s/{slug}/join/{tier.pk}/", language), language, data, f"join {tier.name} (signed in)")
    welcome = _post(client, f"/s/{slug}/join/{lume.pk}/", {"method": "wallet", "interval": "month"}, language)["Location"]
    sub = shop["buyer"].subscriptions.get()
    data.append(sub.pk)
    assert sub.language == language
    assert_translated(_get(client, welcome, language), language, data, "welcome")
    assert_translated(_get(client, "/memberships/", language), language, data, "memberships")
    _post(client, f"/memberships/{sub.pk}/change/", {"tier": kova.pk, "interval": "year"}, language)
    assert_translated(_get(client, "/memberships/", language), language, data, "memberships with a change at renewal")
    _post(client, f"/memberships/{sub.pk}/change-undo/", {}, language)
    page = _get(client, "/memberships/", language)
    assert {"ko": "Lume 멤버십을 유지합니다.", "pt-br": "Você continua no Lume"}[language] in page
    assert_translated(page, language, data, "memberships after undoing the change")
    page = _post(client, f"/memberships/{sub.pk}/pause/", {"periods": "9"}, language, expect=400).content.decode()
    assert {"ko": "일시 중지는 결제 주기 1~3회까지 가능합니다.", "pt-br": "Pause por 1 a 3 períodos."}[language] in page
    assert_translated(page, language, data, "memberships with a refused pause")
    _post(client, f"/memberships/{sub.pk}/cancel/", {}, language)
    assert_translated(_get(client, "/memberships/", language), language, data, "memberships after cancelling")
    assert_translated(_get(client, f"/s/{slug}/join/{lume.pk}/", language), language, data, "join as a member")

    amount = {"ko": "2.50", "pt-br": "2,50"}[language]
    page = _post(client, f"/s/{slug}/allowance/", {"amount": "1.2.3", "period": "week"}, language, expect=400).content.decode()
    assert_translated(page, language, data, "allowance with an error")
    _post(client, f"/s/{slug}/allowance/", {"amount": amount, "period": "week", "expires_at": "2099-12-31"}, language)
    page = _get(client, "/wallet/allowances/", language)
    assert {"ko": "US$2.50", "pt-br": "US$\xa02,50"}[language] in page
    assert_translated(page, language, data, "allowances")
    assert_translated(_get(client, f"/s/{slug}/allowance/", language), language, data, "allowance (granted)")
    allowance = shop["buyer"].allowances.get()
    _post(client, f"/wallet/allowances/{allowance.pk}/revoke/", {}, language)
    assert_translated(_get(client, "/wallet/allowances/", language), language, data, "allowances (revoked)")


@pytest.mark.parametrize("language", LANGUAGES)
def test_membership_and_wallet_emails_are_in_the_language_of_the_buyers_page(client, shop, language, django_capture_on_commit_callbacks):
    """Joined, automatic top-up turned on, and a tab opened from Korean or Portuguese pages: the
    renewal-failed, membership-ended, top-up-failed and tab-overdue emails the worker sends later
    (English active) are written in that language, money and dates its way."""
    from stall.memberships.notices import renewal_failed_notice, subscription_ended_notice
    from stall.payments.models import Wallet
    from stall.wallets.selectors import tab_open_get
    from stall.wallets.services import wallet_auto_top_up
    from stall.wallets.tasks import tab_overdue_notice

    store, buyer = shop["store"], shop["buyer"]
    data = shop["data"] + TIER_NAMES + ["jun@example.com"]
    _, lume, _ = _tiers(store)
    sign_in(client, buyer.email)
    _post(client, f"/s/{store.slug}/join/{lume.pk}/", {"method": "wallet"}, language)
    wallet_form = {"action": "auto_top_up", "below": {"ko": "9.00", "pt-br": "9,00"}[language],
                   "auto_amount": "10", "payment_method": "sandbox_declined"}
    _post(client, "/wallet/?currency=USD", wallet_form, language)
    wallet = Wallet.objects.get(buyer=buyer, currency="USD")
    assert wallet.language == language

    # Another buyer's first purchase ($1, their first tab's limit) on their tab, from the hosted pay page.
    other = type(client)()
    sign_in(other, "jun@example.com")
    _post(other, f"/buy/{shop['pwyw'].pk}/", {"email": "jun@example.com", "amount": "1"}, language)
    checkout = Checkout.objects.latest("created_at")
    _post(other, f"/wallet/pay/{checkout.pk}/", {"payment_method": "tab", "confirm": "yes"}, language)
    tab = tab_open_get(buyer=buyer_for_email(email="jun@example.com"), currency="USD")
    assert tab.language == language

    sub = buyer.subscriptions.get()
    type(sub).objects.filter(pk=sub.pk).update(next_retry_at=sub.current_period_end)
    mail.outbox.clear()
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        renewal_failed_notice.call_local(sub.pk, "Your card was declined.")
        subscription_ended_notice.call_local(sub.pk)
        wallet_auto_top_up(wallet_id=wallet.pk)
        tab_overdue_notice.call_local(tab.pk)
    failed, ended, overdue, top_up = mail.outbox  # the failed top-up's email is sent after its commit
    assert [m.subject for m in mail.outbox] == {
        "ko": ["Lume 멤버십 결제에 실패했습니다", "Lume 멤버십이 종료되었습니다", "외상을 정산해 주세요", "지갑이 충전되지 않았습니다"],
        "pt-br": ["O pagamento da sua assinatura Lume falhou", "Sua assinatura Lume foi encerrada",
                  "Por favor, acerte sua conta", "Sua carteira não foi recarregada"],
    }[language]
    assert {"ko": "(US$3.00)을 갱신하지 못했습니다: 카드가 거절되었습니다.",
            "pt-br": "(US$\xa03,00): Seu cartão foi recusado."}[language] in failed.body
    assert {"ko": "US$10.00", "pt-br": "US$\xa010,00"}[language] in top_up.body
    assert {"ko": "외상 US$1.00", "pt-br": "Sua conta de US$\xa01,00"}[language] in overdue.body
    for message in mail.outbox:
        assert not untranslated(re.sub(r"https?://\S+", " ", message.body), language, data), message.body
        assert_translated(message.alternatives[0][0], language, data, f"email {message.subject}")


# --- Campaigns, the cart, gift cards, commissions, the email list and license keys -------------

SHOP_NAMES = ["Mossa", "Vel", "Tarn", "Kiri", "Lusa", "Omi"]


def _more_products(store):
    """A campaign with two reward tiers (one limited), a bundle, a gift card, a commission and a
    download that issues license keys."""
    from datetime import date, timedelta

    from django.utils import timezone

    from stall.campaigns.services import campaign_create, campaign_publish
    from stall.campaigns.services import tier_create as reward_create
    from stall.catalog.models import ProductKind, ProductStatus
    from stall.catalog.services import bundle_parts_set, product_create
    from stall.commissions.services import service_offer_set
    from stall.orders.licenses import license_policy_set

    campaign = campaign_create(store=store, title="Mossa", goal=5000, deadline=timezone.now() + timedelta(days=10),
                               story="Ondo kalimba.")
    vel = reward_create(campaign=campaign, title="Vel", min_amount=500, quantity=10, description="Veru sokal.",
                        estimated_delivery=date(2030, 5, 1))
    reward_create(campaign=campaign, title="Tarn", min_amount=100)
    campaign = campaign_publish(campaign=campaign)
    keyed = product_with_file(store=store, name="Kiri", amount=200)
    license_policy_set(product=keyed, enabled=True, activation_limit=3)
    part = product_with_file(store=store, name="Lusa", amount=150)
    bundle = product_create(store=store, name="Omi", amount=300, kind=ProductKind.BUNDLE)
    bundle_parts_set(bundle=bundle, part_ids=[part.pk, keyed.pk])
    bundle.status = ProductStatus.PUBLISHED
    bundle.save(update_fields=["status"])
    gift = ProductFactory(store=store, name="Gift card", kind=ProductKind.GIFT_CARD, amount=1000)
    service = product_create(store=store, name="Pet portrait", amount=5000, kind=ProductKind.SERVICE,
                             status=ProductStatus.PUBLISHED)
    service_offer_set(product=service, slots=3, auto_accept_days=7)
    return {"campaign": campaign, "vel": vel, "keyed": keyed, "bundle": bundle, "gift": gift, "service": service}


@pytest.mark.parametrize("language", LANGUAGES)
def test_campaign_cart_gift_card_commission_list_and_library_pages_are_in_the_buyers_language(client, shop, language, django_capture_on_commit_callbacks):
    """The campaign page (signed out, with a refused pledge, as a backer), the pledge and "your
    pledges" pages, a cart of two products, a gift card's page and the redeem page, a
    commission's buy page, the list's sign-up, confirm and unsubscribe pages, and the library
    with a pledge and a license key: no English left."""
    from stall.audience.tokens import confirm_token, unsubscribe_token
    from stall.campaigns.models import Pledge

    store, slug = shop["store"], shop["store"].slug
    more = _more_products(store)
    data = shop["data"] + SHOP_NAMES + ["Gift card", "Pet portrait", "Ondo kalimba.", "Veru sokal."]
    campaign = more["campaign"]
    page = f"/campaigns/{campaign.pk}/"
    assert_translated(_get(client, page, language), language, data, "campaign (signed out)")
    assert_translated(_get(client, f"/s/{slug}/", language), language, data, "store with a bundle and a campaign")
    for product in ("bundle", "keyed", "service"):
        assert_translated(_get(client, f"/s/{slug}/{more[product].slug}/", language), language, data, product)
    assert_translated(_get(client, f"/buy/{more['service'].pk}/", language), language, data, "commission buy page")
    page_400 = _post(client, f"/buy/{more['service'].pk}/", {"email": "ana@example.com"}, language, expect=400)
    assert_translated(page_400.content.decode(), language, data + ["ana@example.com"], "commission buy page with an error")
    assert_translated(_get(client, f"/s/{slug}/gift/{more['gift'].slug}/", language), language, data, "gift card")

    # The email list: sign up, confirm, unsubscribe (asked, then done).
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"/s/{slug}/subscribe/", {"email": "ana@example.com"}, headers={"accept-language": language})
    assert_translated(done.content.decode(), language, data + ["ana@example.com"], "list sign-up")
    (confirm,) = [m for m in mail.outbox if "ana@example.com" in m.to]
    assert not untranslated(re.sub(r"https?://\S+", " ", confirm.subject + " " + confirm.body), language, data), confirm.body
    token = confirm_token(store_id=store.pk, email="ana@example.com")
    assert_translated(_get(client, f"/list/confirm/{token}/", language), language, data + ["ana@example.com"], "list confirmed")
    assert_translated(_get(client, "/list/confirm/nonsense/", language, expect=400), language, data, "list confirm, a bad link")
    leave = f"/list/unsubscribe/{unsubscribe_token(store_id=store.pk, email='ana@example.com')}/"
    assert_translated(_get(client, leave, language), language, data + ["ana@example.com"], "unsubscribe")
    done = client.post(leave, headers={"accept-language": language})
    assert_translated(done.content.decode(), language, data + ["ana@example.com"], "unsubscribed")

    # The cart with two products and a pay-what-you-want one at the buyer's amount (a refused
    # amount first), then checked out.
    pwyw = shop["pwyw"]
    assert_translated(_get(client, f"/s/{slug}/{pwyw.slug}/", language), language, data, "pay-what-you-want product")
    for product in (more["bundle"], more["keyed"]):
        _post(client, f"/s/{slug}/cart/add/", {"product": product.pk}, language)
    refused = _post(client, f"/s/{slug}/cart/add/", {"product": pwyw.pk, "amount": "0,5" if language == "pt-br" else "0.5"}, language, expect=400)
    assert_translated(refused.content.decode(), language, data, "cart refusing an amount")
    _post(client, f"/s/{slug}/cart/add/", {"product": pwyw.pk, "amount": "1,50" if language == "pt-br" else "1.50"}, language)
    cart = _get(client, f"/s/{slug}/cart/", language)
    assert cart.count('name="quantity"') == 3
    assert {"ko": "US$1.50", "pt-br": "US$\xa01,50"}[language] in cart
    assert_translated(cart, language, data, "cart with three products")

    sign_in(client, shop["buyer"].email)
    assert_translated(_get(client, f"/s/{slug}/redeem/", language), language, data, "redeem")
    page_400 = _post(client, f"/s/{slug}/redeem/", {"code": "NOPE-NOPE"}, language, expect=400).content.decode()
    assert_translated(page_400, language, data, "redeem with an unknown code")
    refused = _post(client, page, {"tier": more["vel"].pk, "amount": "1", "method": "wallet"}, language, expect=400)
    assert_translated(refused.content.decode(), language, data, "campaign with a refused pledge")
    amount = {"ko": "5.50", "pt-br": "5,50"}[language]
    _post(client, page, {"tier": more["vel"].pk, "amount": amount, "method": "wallet", "message": "Taro"}, language)
    pledge = Pledge.objects.get(campaign=campaign)
    assert pledge.amount == 550 and pledge.language == language
    data += [pledge.pk, "Taro"]
    assert_translated(_get(client, page, language), language, data, "campaign (as a backer)")
    assert_translated(_get(client, f"/pledges/{pledge.pk}/", language), language, data, "pledge")
    assert_translated(_get(client, "/pledges/", language), language, data, "your pledges")

    # The cart checked out from the wallet's balance is too little: pay by card on the hosted page.
    client.post(f"/s/{slug}/cart/", {"email": shop["buyer"].email}, headers={"accept-language": language})
    checkout = Checkout.objects.latest("created_at")
    client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}, headers={"accept-language": language})
    order = Order.objects.get(checkout=checkout)
    data += [order.pk, *(f.name for p in (more["keyed"],) for f in p.files.all())]
    library = _get(client, "/library/", language)
    keys = re.findall(r'data-testid="license-key">[^<]*<code>([^<]+)</code>', library)
    assert keys, library
    assert_translated(library, language, data + keys, "library with a license key")


@pytest.mark.parametrize("language", LANGUAGES)
def test_backer_commission_and_gift_card_emails_are_in_the_language_of_the_buyers_page(client, shop, language, django_capture_on_commit_callbacks):
    """A pledge, a commission and a gift card bought on Korean or Portuguese pages: the emails
    the worker sends later (English active) are in that language; the creator's stay English."""
    from stall.campaigns.models import CampaignStatus, Pledge, PledgeStatus
    from stall.campaigns.notices import campaign_outcome_notice, pledge_charge_failed_notice
    from stall.campaigns.services import campaign_update_post
    from stall.commissions.models import Commission
    from stall.commissions.notices import commission_notice_send

    store, slug, buyer = shop["store"], shop["store"].slug, shop["buyer"]
    more = _more_products(store)
    data = shop["data"] + SHOP_NAMES + ["Gift card", "Pet portrait", "lia@example.com", "Taro", "A fox, please."]
    sign_in(client, buyer.email)
    campaign = more["campaign"]
    _post(client, f"/campaigns/{campaign.pk}/", {"tier": more["vel"].pk, "amount": "5", "method": "wallet"}, language)
    pledge = Pledge.objects.get(campaign=campaign)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _post(client, f"/buy/{more['service'].pk}/", {"email": buyer.email, "brief": "A fox, please."}, language)
        checkout = Checkout.objects.latest("created_at")
        _post(client, f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}, language)
        _post(client, f"/s/{slug}/gift/{more['gift'].slug}/", {"email": buyer.email, "recipient_email": "lia@example.com",
                                                                "sender_name": "Taro"}, language)
        gift_checkout = Checkout.objects.latest("created_at")
        _post(client, f"/checkout/{gift_checkout.pk}/", {"payment_method": "sandbox_visa"}, language)
    commission = Commission.objects.get()
    data += [pledge.pk, checkout.pk, gift_checkout.pk, *(o.pk for o in Order.objects.all())]

    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.FAILED)
        pledge_charge_failed_notice.call_local(pledge.pk)
        campaign_update_post(campaign=campaign, title="Vel", body="Ondo kalimba.")
        type(campaign).objects.filter(pk=campaign.pk).update(status=CampaignStatus.CANCELED)
        Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.VOIDED)
        campaign_outcome_notice.call_local(campaign.pk)
        commission_notice_send.call_local(commission.pk, "delivered")
        commission_notice_send.call_local(commission.pk, "message_to_creator")
    to_creator = [m for m in mail.outbox if m.to == [store.owner.email]]
    to_buyers = [m for m in mail.outbox if m not in to_creator]
    assert {m.to[0] for m in to_buyers} == {buyer.email, "lia@example.com"}
    # Two receipts; the commission opened and delivered; the gift card; a failed charge, an update, the outcome.
    assert len(to_buyers) == 8, [m.subject for m in to_buyers]
    assert sorted(m.subject.split(":")[0] for m in to_creator) == ["New commission", "New message about the commission Pet portrait"]
    codes = re.compile(r"https?://[^\s<]+|[0-9A-Z]{4}(?:-[0-9A-Z]{4})+")  # links and gift card codes are data
    for message in to_buyers:
        assert not untranslated(message.subject, language, data), message.subject
        assert not untranslated(codes.sub(" ", message.body), language, data), message.body
        assert_translated(codes.sub(" ", message.alternatives[0][0]), language, data, f"email {message.subject}")

    # The buyer's commission page, delivered, with a message from the creator.
    from stall.commissions.services import commission_deliver, commission_message_add

    commission_message_add(commission=commission, author="creator", body="Taro")
    commission_deliver(store=store, commission_id=commission.pk, note="Taro")
    page = _get(client, f"/commissions/{commission.access_token}/", language)
    assert_translated(page, language, data, "commission (delivered)")
    # The library lists it, in the buyer's words, with the link to that page.
    library = _get(client, "/library/", language)
    assert f'href="/commissions/{commission.access_token}/"' in library
    assert_translated(library, language, data + [f.name for f in shop["download"].files.all()], "library with a commission")


def test_a_canceled_campaign_and_a_canceled_pledge_agree_in_gender(client, shop):
    """In Portuguese a campaign ("campanha") is feminine and a pledge ("apoio") masculine: the
    campaign's status and the pledge's have their own translations (contexts), not one "Canceled"."""
    from stall.campaigns.models import CampaignStatus, Pledge, PledgeStatus

    more = _more_products(shop["store"])
    campaign = more["campaign"]
    sign_in(client, shop["buyer"].email)
    _post(client, f"/campaigns/{campaign.pk}/", {"tier": more["vel"].pk, "amount": "5", "method": "wallet"}, "pt-br")
    pledge = Pledge.objects.get(campaign=campaign)
    Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.CANCELED)
    type(campaign).objects.filter(pk=campaign.pk).update(status=CampaignStatus.CANCELED)
    page = _get(client, f"/campaigns/{campaign.pk}/", "pt-br")
    assert re.search(r'data-testid="status">Cancelada<', page), page
    page = _get(client, f"/pledges/{pledge.pk}/", "pt-br")
    assert re.search(r'data-testid="pledge-status">Cancelado<', page), page
    with translation.override("pt-br"):
        assert [str(CampaignStatus.CANCELED.label), str(PledgeStatus.CANCELED.label)] == ["Cancelada", "Cancelado"]
    with translation.override("ko"):
        assert str(CampaignStatus.LIVE.label) == "진행 중"


@pytest.mark.parametrize(("language", "monthly"), [("ko", "Lume (월간)"), ("pt-br", "Lume (mensal)")])
def test_a_membership_bought_by_card_names_its_interval_in_the_buyers_language(client, shop, language, monthly, django_capture_on_commit_callbacks):
    """The tier's price is sold as a product named "Lume (monthly)" (the API's name, kept on the
    lines); the payment page, the thank-you page and the receipt show "monthly" translated."""
    store = shop["store"]
    _, lume, _ = _tiers(store)
    joined = _post(client, f"/s/{store.slug}/join/{lume.pk}/", {"method": "card", "interval": "month", "email": "ana@example.com"}, language)
    checkout = Checkout.objects.latest("created_at")
    assert [line.name for line in checkout.lines.all()] == ["Lume (monthly)"]
    data = shop["data"] + TIER_NAMES + ["ana@example.com", checkout.pk]
    page = _get(client, urlsplit(joined["Location"]).path, language)
    assert monthly in page
    assert_translated(page, language, data, "pay for a membership")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _post(client, f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"}, language)
    order = Order.objects.get(checkout=checkout)
    data.append(order.pk)
    page = _get(client, f"/checkout/{checkout.pk}/complete/", language)
    assert_translated(page, language, data, "membership paid")
    (receipt,) = [m for m in mail.outbox if m.to == ["ana@example.com"]]
    assert monthly in receipt.body and monthly in receipt.alternatives[0][0]
    assert not untranslated(re.sub(r"https?://\S+", " ", receipt.body), language, data), receipt.body
    assert order.lines.get().name == "Lume (monthly)"  # what the API answers, unchanged


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_usage_billing_page_is_in_the_buyers_language(client, shop, language):
    """A buyer billed for usage in arrears: the page with a past-due invoice holding an
    adjustment for late usage and an amount carried, the form refusing a card, and after saving
    one: no English left."""
    from datetime import timedelta

    from django.utils import timezone

    from stall.metering.billing import periods_close
    from stall.metering.ingest import events_ingest
    from stall.metering.models import UsageSubscription
    from stall.metering.services import meter_create, plan_create, usage_subscription_create
    from stall.orders.services import customer_for_email

    store = shop["store"]
    meter_create(store=store, key="calls", name="Ondo", event_name="call")
    plan = plan_create(store=store, name="Veru menik", prices=[{"meter": "calls", "unit_price": "2"}])
    customer = customer_for_email(store_id=store.pk, email=shop["buyer"].email)
    sub = usage_subscription_create(store=store, customer_id=customer.pk, plan_id=plan.pk, billing="arrears",
                                    payment_method="sandbox_declined", wallet_first=False)

    def period(days_ago, until=0):
        now = timezone.now()
        UsageSubscription.objects.filter(pk=sub.pk).update(period_start=now - timedelta(days=days_ago),
                                                           period_end=now - timedelta(days=until, seconds=1))

    def events(prefix, n, days_ago):
        stamp = (timezone.now() - timedelta(days=days_ago)).isoformat()
        events_ingest(store=store, events=[{"id": f"{prefix}{i}", "customer": customer.pk, "name": "call",
                                            "timestamp": stamp} for i in range(n)])

    period(20, 10)
    events("a", 5, 15)
    periods_close()  # 10¢: carried
    events("late", 3, 15)
    period(10)
    events("b", 30, 1)
    periods_close()  # declined
    data = shop["data"] + [plan.name, "Ondo", sub.pk, "nope"]
    sign_in(client, shop["buyer"].email)
    assert_translated(_get(client, "/usage/", language), language, data, "usage billing (past due)")
    page = _post(client, f"/usage/{sub.pk}/card/", {"payment_method": "nope"}, language, expect=400).content.decode()
    assert_translated(page, language, data, "usage billing with a refused card")
    _post(client, f"/usage/{sub.pk}/card/", {"payment_method": "sandbox_visa", "wallet_first": "on"}, language)
    assert_translated(_get(client, "/usage/", language), language, data, "usage billing (paid)")

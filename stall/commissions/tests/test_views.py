"""The pages: buying a commission with its brief, the buyer's page (messages, accept), the
creator's queue and commission page (deliver, decline), and bad input shown, never a 500."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.commissions.models import Commission, CommissionStatus
from stall.commissions.services import commission_deliver, service_offer_set
from stall.testing import StoreFactory, UserFactory

from .conftest import order_commission

pytestmark = pytest.mark.django_db


def test_the_buy_page_takes_the_brief_and_files(client, store, service):
    page = client.get(f"/buy/{service.pk}/").content.decode()
    assert 'enctype="multipart/form-data"' in page and "3 commission slots open" in page

    missing = client.post(f"/buy/{service.pk}/", {"email": "fan@example.com", "brief": ""})
    assert missing.status_code == 400
    assert missing.context["brief_form"].errors["brief"] == ["This field is required."]
    assert Commission.objects.count() == 0

    made = client.post(f"/buy/{service.pk}/", {
        "email": "fan@example.com", "brief": "My cat, as a knight.",
        "brief_files": [SimpleUploadedFile("cat.jpg", b"jpeg", "image/jpeg")],
    })
    assert made.status_code == 302
    commission = Commission.objects.get()
    assert (commission.status, commission.brief, commission.files.get().name) == (CommissionStatus.RESERVED, "My cat, as a knight.", "cat.jpg")
    paid = client.post(made["Location"], {"payment_method": "sandbox_visa"})
    complete = client.get(paid["Location"]).content.decode()
    commission.refresh_from_db()
    assert commission.status == CommissionStatus.AWAITING_DELIVERY
    assert f'href="/commissions/{commission.access_token}/"' in complete


def test_a_full_offer_says_so_on_the_buy_page(client, store, service):
    service_offer_set(product=service, slots=1)
    order_commission(store=store, product=service)
    response = client.post(f"/buy/{service.pk}/", {"email": "late@example.com", "brief": "Please"})
    assert response.status_code == 400
    assert "All commission slots are taken for now." in response.content.decode()


def test_the_buyer_talks_and_accepts_once(client, store, service):
    commission = order_commission(store=store, product=service)
    url = f"/commissions/{commission.access_token}/"
    assert client.get(url).status_code == 200
    assert client.get("/commissions/not-a-token/").status_code == 404
    assert client.post(url, {"body": "Can it be blue?"}).status_code == 302
    assert client.post(url, {"body": ""}).status_code == 400

    early = client.post(url + "accept/")
    assert early.status_code == 409 and "it cannot be accepted" in early.content.decode()
    commission_deliver(store=store, commission_id=commission.pk, note="Done", files=[SimpleUploadedFile("a.png", b"png")])
    page = client.get(url).content.decode()
    file_url = re.search(rf'href="({url}files/cfile_\w+/)"', page).group(1)
    assert client.get(file_url).getvalue() == b"png"
    assert client.post(url + "accept/").status_code == 302
    twice = client.post(url + "accept/")
    assert twice.status_code == 409 and "This commission is accepted: it cannot be accepted." in twice.content.decode()


def test_the_creator_delivers_and_declines_from_the_dashboard(client, creator, store, service):
    client.force_login(creator)
    first = order_commission(store=store, product=service, email="a@example.com")
    second = order_commission(store=store, product=service, email="b@example.com")
    queue = client.get(f"/dashboard/{store.slug}/commissions/").content.decode()
    assert "a@example.com" in queue and "b@example.com" in queue

    base = f"/dashboard/{store.slug}/commissions/"
    empty = client.post(f"{base}{first.pk}/deliver/", {"note": ""})
    assert empty.status_code == 400 and "Add a note or files to deliver." in empty.content.decode()
    done = client.post(f"{base}{first.pk}/deliver/", {"note": "Here", "files": [SimpleUploadedFile("w.png", b"w")]})
    assert done.status_code == 302
    assert client.post(f"{base}{second.pk}/decline/", {"reason": "Sorry"}).status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (CommissionStatus.DELIVERED, CommissionStatus.DECLINED)
    late = client.post(f"{base}{second.pk}/deliver/", {"note": "late"})
    assert late.status_code == 400 and "This commission is declined: it cannot be delivered." in late.content.decode()

    # Another creator reaches none of it.
    client.force_login(UserFactory())
    assert client.get(f"{base}{first.pk}/").status_code == 404
    other = StoreFactory(owner=UserFactory())
    client.force_login(other.owner)
    assert client.get(f"/dashboard/{other.slug}/commissions/{first.pk}/").status_code == 404


def test_the_creator_opens_a_commission_offer(client, creator, store):
    client.force_login(creator)
    url = f"/dashboard/{store.slug}/commissions/"
    bad = client.post(url, {"name": "Portrait", "price": "ten", "offer-auto_accept_days": "7"})
    assert bad.status_code == 400
    made = client.post(url, {"name": "Portrait", "price": "40", "offer-slots": "2", "offer-auto_accept_days": "5"})
    assert made.status_code == 302
    product = store.products.get(kind="service")
    assert (product.amount, product.service_offer.slots, product.service_offer.auto_accept_days) == (4000, 2, 5)
    assert client.get(f"/s/{store.slug}/{product.slug}/").status_code == 200


def _library(client, email, language="en"):
    from urllib.parse import urlsplit

    from stall.accounts.services import buyer_magic_link

    client.get(urlsplit(buyer_magic_link(email=email)).path)
    return client.get("/library/", headers={"accept-language": language})


def test_the_library_lists_the_buyers_commissions_with_their_state_and_page(client, store, service):
    """Paid commissions are in the buyer's library, newest first among what they bought, each
    with its state and the link to its page; an unpaid reservation and other buyers' are not."""
    from stall.commissions.services import commission_decline

    from .conftest import reserve

    service_offer_set(product=service, slots=10, auto_accept_days=7)
    first = order_commission(store=store, product=service, email="Fan@Example.com")
    second = order_commission(store=store, product=service)
    reserve(store=store, product=service)  # reserved, never paid
    order_commission(store=store, product=service, email="other@example.com")
    commission_deliver(store=store, commission_id=second.pk, note="Here it is.")
    commission_decline(store=store, commission_id=first.pk, reason="Too busy")

    page = _library(client, "fan@example.com").content.decode()
    cards = re.findall(r'data-testid="library-commission">(.*?)</section>', page, re.S)
    assert len(cards) == 2
    assert [re.search(r'data-testid="library-status">([^<]+)<', card).group(1) for card in cards] == [
        "Delivered: review it", "Declined and refunded"]
    for card, commission in zip(cards, (second, first), strict=True):
        assert "Pet portrait" in card and commission.order_id in card
        assert f'href="/commissions/{commission.access_token}/">Open the commission</a>' in card
    assert client.get(f"/commissions/{second.access_token}/").status_code == 200


@pytest.mark.parametrize(("language", "status", "action"), [("ko", "진행 중", "커미션 보기"), ("pt-br", "Em andamento", "Ver encomenda")])
def test_the_librarys_commission_speaks_the_buyers_language(client, store, service, language, status, action):
    order_commission(store=store, product=service)
    page = _library(client, "fan@example.com", language).content.decode()
    assert f'data-testid="library-status">{status}<' in page and f">{action}</a>" in page


def test_a_library_with_no_commission_shows_none(client, store, service):
    """A reservation whose checkout lapsed is no purchase: the library stays empty."""
    from .conftest import reserve

    _, commission = reserve(store=store, product=service)
    Commission.objects.filter(pk=commission.pk).update(status=CommissionStatus.EXPIRED)
    page = _library(client, "fan@example.com").content.decode()
    assert 'data-testid="library-commission"' not in page

"""The buyer's pages have no duplicate element ids: a label or a script reaching for one id must
find one element (issue #13: choosing "declined" under automatic top-up selected it under top-up)."""

from collections import Counter
from html.parser import HTMLParser

import pytest

from stall.content.services import post_create
from stall.wallets.services import wallet_top_up

from .conftest import open_checkout, sign_in, spend

pytestmark = pytest.mark.django_db


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: Counter[str] = Counter()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids[value] += 1


def duplicate_ids(html: str) -> dict[str, int]:
    parser = _Ids()
    parser.feed(html)
    return {name: count for name, count in parser.ids.items() if count > 1}


def test_no_buyer_page_repeats_an_element_id(client, store, buyer, post):
    top_up = wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    assert top_up.status == "succeeded"
    spend(store=store, product=post, buyer=buyer, method="tab")
    sign_in(client, buyer)
    wallet_page = client.get("/wallet/")
    checkout = open_checkout(store, post, buyer.email)
    article = post_create(store=store, title="Notes", amount=25, status="published")
    pages = {
        "wallet": wallet_page,
        "wallet, a settings form with errors": client.post("/wallet/", {"action": "auto_top_up", "currency": "USD"}),
        "tab": client.get("/wallet/tab/"),
        "pay": client.get(f"/checkout/{checkout.pk}/"),
        "post": client.get(f"/s/{store.slug}/posts/{article.product.slug}/"),
        "store": client.get(f"/s/{store.slug}/"),
        "library": client.get("/library/"),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 400), (name, response.status_code)
        assert duplicate_ids(response.content.decode()) == {}, name
    assert 'id="auto_payment_method_0"' in wallet_page.content.decode()


def test_the_check_finds_a_repeated_id():
    assert duplicate_ids('<p id="a"></p><label for="a"><input id="a"></label><i id="b">') == {"a": 2}

"""Helpers for the wallet and tab tests: a signed-in buyer, spends, and the ledger audit."""

import html
import re
from urllib.parse import urlsplit

import pytest

from stall.accounts.services import buyer_for_email, buyer_magic_link
from stall.checkout.services import CheckoutItem, checkout_create
from stall.ledger.models import Account
from stall.ledger.selectors import account_balance, account_sums_from_transfers


def assert_ledger_balanced():
    """Every account's four totals equal the sums of its transfers, and all accounts net to zero."""
    accounts = list(Account.objects.all())
    for account in accounts:
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
    assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)


def store_balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.pk, currency=store.currency).amount


def open_checkout(store, product, email="reader@example.com"):
    return checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk)])


def spend(*, store, product, buyer, method="wallet"):
    from stall.orders.checkout_pay import checkout_confirm

    return checkout_confirm(checkout_id=open_checkout(store, product, buyer.email).pk, payment_method=method, buyer=buyer).order


def sign_in(client, buyer) -> None:
    """Follow the buyer's magic link, as from their email."""
    client.get(urlsplit(buyer_magic_link(email=buyer.email)).path)


def words(response) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def field_errors(response) -> list[str]:
    blocks = re.findall(r'<ul class="errorlist"[^>]*>(.*?)</ul>', response.content.decode(), re.S)
    return [html.unescape(e) for block in blocks for e in re.findall(r"<li>(.*?)</li>", block)]


def alerts(response) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", a)).split())
        for a in re.findall(r'<(?:div|p) class="(?:alert alert-error|msg msg-error)"[^>]*>(.*?)</(?:div|p)>', response.content.decode(), re.S)
    ]


@pytest.fixture
def buyer(db):
    return buyer_for_email(email="reader@example.com")


@pytest.fixture
def reader(client, buyer):
    """The test client, signed in as ``buyer``."""
    sign_in(client, buyer)
    return client


@pytest.fixture
def post(store):
    from stall.testing import ProductFactory

    return ProductFactory(store=store, name="A 25¢ post", amount=25)

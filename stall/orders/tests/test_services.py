"""Orders, entitlements and signed, counted download links."""

import re
import time
from unittest import mock

import pytest
from django.core import signing

from stall.accounts.models import Customer
from stall.orders.errors import (
    DownloadLimitReached,
    DownloadLinkExpired,
    DownloadLinkInvalid,
    DownloadRevoked,
)
from stall.orders.models import DownloadCount, Entitlement, Order
from stall.orders.selectors import (
    downloads_used,
    entitlements_for_email,
    order_get,
    orders_for_store,
)
from stall.orders.services import (
    download_register,
    download_resolve,
    download_token,
    download_url,
    entitlements_revoke_for_order,
)
from stall.testing import StoreFactory, buy, product_with_file

pytestmark = pytest.mark.django_db


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def zine(store):
    return product_with_file(store=store, name="Zine", amount=300, download_limit=2)


@pytest.fixture
def order(store, zine):
    return buy(store=store, product=zine, email="reader@example.com")


def test_paid_order_copies_the_checkout_and_grants_the_products(store, zine, order):
    """An order keeps the checkout's lines and prices and grants one entitlement per product."""
    assert (order.store_id, order.email, order.currency, order.amount_total, order.status) == (
        store.pk, "reader@example.com", "USD", 300, "paid"
    )
    assert [(ln.product_id, ln.name, ln.unit_amount, ln.quantity) for ln in order.lines.all()] == [(zine.pk, "Zine", 300, 1)]
    entitlement = order.entitlements.get()
    assert (entitlement.product_id, entitlement.email, entitlement.download_limit, entitlement.store_id) == (
        zine.pk, "reader@example.com", 2, store.pk
    )
    assert order.customer.email == "reader@example.com"


def test_one_customer_per_email_per_store(store, zine):
    """Two orders with one email make one customer in that store, and another in another store."""
    first = buy(store=store, product=zine, email="reader@example.com")
    second = buy(store=store, product=zine, email="reader@example.com")
    other_store = StoreFactory()
    third = buy(store=other_store, product=product_with_file(store=other_store), email="reader@example.com")
    assert first.customer_id == second.customer_id
    assert third.customer_id != first.customer_id
    assert Customer.objects.filter(email="reader@example.com").count() == 2


def test_orders_are_listed_per_store_newest_first_and_searchable(store, zine):
    """The store's order list is its own orders, newest first, searchable by id or email."""
    older = buy(store=store, product=zine, email="ana@example.com")
    newer = buy(store=store, product=zine, email="bo@example.com")
    other_store = StoreFactory()
    buy(store=other_store, product=product_with_file(store=other_store), email="ana@example.com")
    assert list(orders_for_store(store=store)) == [newer, older]
    assert list(orders_for_store(store=store, query="ANA@")) == [older]
    assert list(orders_for_store(store=store, query=newer.pk)) == [newer]
    assert order_get(store=store, order_id=older.pk) == older


def test_download_link_resolves_to_its_entitlement_and_file(zine, order):
    """A signed link gives back exactly the entitlement and file it was made for."""
    entitlement, file = order.entitlements.get(), zine.files.get()
    assert download_resolve(token=download_token(entitlement=entitlement, file=file)) == (entitlement, file)
    assert download_url(entitlement=entitlement, file=file) == f"/d/{download_token(entitlement=entitlement, file=file)}/"


def test_tampered_download_link_is_invalid(zine, order):
    """Changing any character of the token breaks the signature."""
    token = download_token(entitlement=order.entitlements.get(), file=zine.files.get())
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(DownloadLinkInvalid, match=exactly("This download link is not valid.")) as caught:
        download_resolve(token=tampered)
    assert caught.value.status == 404
    with pytest.raises(DownloadLinkInvalid):
        download_resolve(token="nonsense")


def test_link_signed_for_another_purpose_is_invalid(zine, order):
    """A token signed with the same key for something else (another salt) is not a download link."""
    payload = {"e": order.entitlements.get().pk, "f": zine.files.get().pk}
    with pytest.raises(DownloadLinkInvalid):
        download_resolve(token=signing.dumps(payload, compress=True))


def test_link_to_a_file_of_another_product_is_invalid(store, order):
    """An entitlement to one product does not open another product's file, even with a valid signature."""
    other_file = product_with_file(store=store, name="Other").files.get()
    token = download_token(entitlement=order.entitlements.get(), file=other_file)
    with pytest.raises(DownloadLinkInvalid):
        download_resolve(token=token)


def test_download_link_expires(zine, order, settings):
    """A link older than STALL_DOWNLOAD_LINK_TTL_SECONDS raises DownloadLinkExpired (410)."""
    settings.STALL_DOWNLOAD_LINK_TTL_SECONDS = 3600
    entitlement, file = order.entitlements.get(), zine.files.get()
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 3601):
        old = download_token(entitlement=entitlement, file=file)
    with mock.patch("django.core.signing.time.time", return_value=time.time() - 3500):
        recent = download_token(entitlement=entitlement, file=file)
    with pytest.raises(DownloadLinkExpired, match=exactly("This download link has expired. Open your library for a fresh one.")) as caught:
        download_resolve(token=old)
    assert caught.value.status == 410
    assert download_resolve(token=recent) == (entitlement, file)


def test_downloads_are_counted_up_to_the_limit(zine, order):
    """Each download counts; past the product's limit the next one is refused."""
    entitlement, file = order.entitlements.get(), zine.files.get()
    assert download_register(entitlement=entitlement, file=file) == 1
    assert download_register(entitlement=entitlement, file=file) == 2
    with pytest.raises(DownloadLimitReached, match=exactly("This file has been downloaded as many times as the purchase allows.")) as caught:
        download_register(entitlement=entitlement, file=file)
    assert caught.value.status == 403
    assert DownloadCount.objects.get(entitlement=entitlement, file=file).count == 2
    assert downloads_used(entitlement=entitlement) == {file.pk: 2}


def test_revoked_entitlement_downloads_nothing(zine, order):
    """After a revocation (a full refund) the file cannot be downloaded and nothing is counted."""
    assert entitlements_revoke_for_order(order=order) == 1
    assert entitlements_revoke_for_order(order=order) == 0
    entitlement = Entitlement.objects.get(order=order)
    assert not entitlement.active
    with pytest.raises(DownloadRevoked, match=exactly("This purchase was refunded, so its downloads are no longer available.")):
        download_register(entitlement=entitlement, file=zine.files.get())
    assert DownloadCount.objects.filter(count__gt=0).count() == 0


def test_library_lists_everything_bought_with_an_email_across_stores(store, zine, order):
    """The library query finds every entitlement of an email, any case, in every store, newest first."""
    other_store = StoreFactory()
    other = buy(store=other_store, product=product_with_file(store=other_store, name="Poster"), email="Reader@Example.com")
    buy(store=store, product=zine, email="someone-else@example.com")
    found = list(entitlements_for_email(email="READER@example.com"))
    assert [e.order_id for e in found] == [other.pk, order.pk]
    assert Order.objects.count() == 3

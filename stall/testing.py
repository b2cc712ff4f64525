"""Factories and helpers for the test suite."""

import functools
import json

import factory
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from stall.accounts.models import User
from stall.catalog.models import PriceType, Product, ProductStatus
from stall.catalog.services import product_create
from stall.checkout.services import CheckoutItem, checkout_create
from stall.orders.checkout_pay import checkout_confirm
from stall.stores.models import Store

FACTORY_PASSWORD = "correct horse battery"


@functools.cache
def _factory_password_hash() -> str:
    # Argon2 is slow on purpose; hash the factories' shared password once per test run.
    return make_password(FACTORY_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"creator{n}@example.com")
    password = factory.LazyFunction(_factory_password_hash)


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Store {n}")
    slug = factory.Sequence(lambda n: f"store-{n}")
    currency = "USD"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    store = factory.SubFactory(StoreFactory)
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    price_type = PriceType.FIXED
    amount = 300
    currency = factory.LazyAttribute(lambda o: o.store.currency)
    status = ProductStatus.PUBLISHED
    download_limit = 3


def product_with_file(*, store, name="Zine", amount=300, content=b"hello, reader\n", **kwargs):
    upload = ContentFile(content, name="zine.txt")
    upload.content_type = "text/plain"
    return product_create(store=store, name=name, amount=amount, status=ProductStatus.PUBLISHED, files=[upload], **kwargs)


def buy(*, store, product, email="buyer@example.com", amount=None, payment_method="sandbox_visa"):
    """Buy ``product`` through the services, as the checkout page does; returns the order."""
    checkout = checkout_create(store=store, email=email, items=[CheckoutItem(product_id=product.pk, amount=amount)])
    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=payment_method)
    return checkout.order


class ApiClient:
    """Django's test client speaking API v1: JSON bodies, the bearer key, optional Idempotency-Key."""

    def __init__(self, client, secret):
        self.client = client
        self.secret = secret

    def _headers(self, idempotency_key=None, secret=None):
        headers = {"Authorization": f"Bearer {self.secret if secret is None else secret}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def get(self, path, params=None, secret=None):
        return self.client.get(f"/api/v1{path}", params or {}, headers=self._headers(secret=secret))

    def post(self, path, body=None, idempotency_key=None, secret=None, raw=None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(
            f"/api/v1{path}", data=data, content_type="application/json",
            headers=self._headers(idempotency_key, secret),
        )

    def upload(self, path, files, idempotency_key=None):
        return self.client.post(f"/api/v1{path}", data=files, headers=self._headers(idempotency_key))


def query_plan(read) -> str:
    """The database's plan for the first statement ``read()`` runs: to check an index serves a
    query the application makes, not a copy of it written in the test. On PostgreSQL sequential
    scans are turned off for the EXPLAIN, as a near-empty test table would otherwise be read whole:
    what is checked is that an index's condition fits the query."""
    with CaptureQueriesContext(connection) as captured:
        read()
    sql = captured.captured_queries[0]["sql"]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(str(row) for row in cursor.fetchall())

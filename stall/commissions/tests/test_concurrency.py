"""The last commission slots under concurrent buyers, on real connections (one per thread)."""

import threading

import pytest
from django.db import connection

from stall.catalog.models import ProductKind, ProductStatus
from stall.catalog.services import product_create
from stall.commissions.errors import CommissionSlotsFull
from stall.commissions.models import Commission, ServiceOffer
from stall.commissions.services import service_offer_set

from .conftest import reserve

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def in_threads(count: int, work) -> tuple[list, list]:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which asserts on it
            errors[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results, errors


def test_eight_buyers_for_three_slots_get_exactly_three(store):
    product = product_create(store=store, name="Portrait", amount=5000, kind=ProductKind.SERVICE, status=ProductStatus.PUBLISHED)
    service_offer_set(product=product, slots=3)

    results, errors = in_threads(THREADS, lambda i: reserve(store=store, product=product, email=f"fan{i}@example.com")[1].pk)

    won = [r for r in results if r]
    assert len(won) == 3
    assert all(isinstance(e, CommissionSlotsFull) for e in errors if e is not None)
    assert sum(e is not None for e in errors) == THREADS - 3
    assert ServiceOffer.objects.get(pk=product.pk).taken == 3
    assert sorted(Commission.objects.values_list("pk", flat=True)) == sorted(won)

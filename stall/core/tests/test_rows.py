"""Model instances from hand-written SQL (stall.core.rows) are the ones the ORM makes."""

import pytest
from django.db import connection
from django.db.models.signals import post_init

from stall.checkout.models import Checkout, CheckoutLine
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.rows import (
    PrefetchedRows,
    model_columns,
    model_from_row,
    model_insert,
    prefetched_rows,
)

pytestmark = pytest.mark.django_db


def _read(model, pk):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {model_columns(model, 'm')} FROM {model._meta.db_table} m WHERE m.id = %s", [pk])
        return model_from_row(model, cursor.fetchone())


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_a_row_read_by_hand_is_the_instance_the_orm_loads(store, product):
    """Every field's value (times as aware datetimes, booleans as bools), loaded state, saveable."""
    made = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    mine, orms = _read(Checkout, made.pk), Checkout.objects.get(pk=made.pk)
    assert _fields(mine) == _fields(orms)
    assert (mine._state.adding, mine._state.db, mine.store.pk) == (False, "default", store.pk)
    mine.email = "c@example.com"
    mine.save(update_fields=["email"])
    assert Checkout.objects.get(pk=made.pk).email == "c@example.com"


def test_a_model_watched_by_a_post_init_receiver_is_built_through_its_init(store, product):
    """A receiver of post_init hears of instances read by hand, as of those the ORM loads."""
    made = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    heard = []

    def receiver(sender, instance, **kwargs):
        heard.append(instance.pk)

    post_init.connect(receiver, sender=Checkout)
    try:
        _read(Checkout, made.pk)
    finally:
        post_init.disconnect(receiver, sender=Checkout)
    assert heard == [made.pk]


def test_model_insert_writes_the_rows_it_returns(store, product):
    """Defaults filled, auto ids read back in order, the rows as the ORM then reads them."""
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    lines = model_insert(CheckoutLine, [
        {"checkout_id": checkout.pk, "product_id": product.pk, "name": name, "unit_amount": 100, "quantity": 1}
        for name in ("one", "two")
    ])
    assert [ln.name for ln in lines] == ["one", "two"] and lines[0].pk < lines[1].pk
    for line in lines:
        assert _fields(line) == _fields(CheckoutLine.objects.get(pk=line.pk))
        assert line.amount_discount == 0


def test_prefetched_rows_answer_without_a_query_and_filters_still_query(store, product, django_assert_num_queries):
    """Held rows come back as they are, through the manager too; a filter on them asks the database."""
    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    held = list(checkout.lines.all())
    checkout._prefetched_objects_cache = PrefetchedRows(checkout, {"lines": held})
    with django_assert_num_queries(0):
        assert prefetched_rows(checkout, "lines") is held
        assert list(checkout.lines.all()) == held
    with django_assert_num_queries(1):
        assert list(checkout.lines.filter(name="nothing")) == []

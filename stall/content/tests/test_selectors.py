"""Reads for posts: stall/content/selectors.py."""

import pytest
from django.forms.models import model_to_dict

from stall.catalog.models import ProductStatus
from stall.content.errors import PostNotFound
from stall.content.models import Post
from stall.content.selectors import post_get_for_reader
from stall.testing import StoreFactory

from .conftest import make_post


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.parametrize("by", ["store", "store_slug"])
def test_a_post_read_for_a_reader_is_the_post_the_orm_reads(store, by):
    """The one-click unlock's read (one written-out SELECT) gives the post, its product and its
    store exactly as the ORM loads them: every field, with dates as aware datetimes."""
    make_post(store, title="Other")
    post = make_post(store, title="Field notes")
    found = post_get_for_reader(slug=post.slug, **({"store": store} if by == "store" else {"store_slug": store.slug}))
    loaded = Post.objects.select_related("product", "store").get(pk=post.pk)
    assert _fields(found) == _fields(loaded)
    assert _fields(found.product) == _fields(loaded.product)
    assert _fields(found.store) == _fields(loaded.store)
    assert found.product.created_at.tzinfo is not None
    assert found._state.adding is False and found.product._state.adding is False
    assert model_to_dict(found.product)["status"] == ProductStatus.PUBLISHED


def test_another_stores_post_of_the_same_slug_is_not_found(store):
    """A slug is looked up within the store named: another store's post of the same slug is
    "not found", by store or by slug, and so is an unknown store."""
    other = StoreFactory()
    post = make_post(other, title="Field notes")
    for kwargs in ({"store": store}, {"store_slug": store.slug}, {"store_slug": "no-such-store"}):
        with pytest.raises(PostNotFound):
            post_get_for_reader(slug=post.slug, **kwargs)
    assert post_get_for_reader(store_slug=other.slug, slug=post.slug).pk == post.pk

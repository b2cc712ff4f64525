from django.db.models import QuerySet

from stall.stores.models import Store

from .errors import ProductNotFound
from .models import LISTED_KINDS, Product, ProductStatus


def product_get(*, store: Store, product_id: str) -> Product:
    """A product of ``store``; another store's product is "not found", never "forbidden"."""
    product = Product.objects.filter(store=store, pk=product_id).first()
    if product is None:
        raise ProductNotFound()
    return product


def product_get_public(*, store: Store, slug: str) -> Product:
    product = Product.objects.filter(store=store, slug=slug, status=ProductStatus.PUBLISHED).first()
    if product is None:
        raise ProductNotFound()
    return product


def products_public(*, store: Store) -> QuerySet[Product]:
    return Product.objects.filter(store=store, status=ProductStatus.PUBLISHED, kind__in=LISTED_KINDS).order_by("-pk")


def products_for_store(*, store: Store) -> QuerySet[Product]:
    return Product.objects.filter(store=store, kind__in=LISTED_KINDS).order_by("-pk").prefetch_related("files", "bundle_items")

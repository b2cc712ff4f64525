from .errors import StoreNotFound
from .models import Store


def store_get_public(*, slug: str) -> Store:
    store = Store.objects.filter(slug=slug).first()
    if store is None:
        raise StoreNotFound()
    return store


def store_for_user(*, user, slug: str) -> Store:
    """The store with this address, if ``user`` may act for it; otherwise not found."""
    store = Store.objects.filter(slug=slug, owner=user).first() if user.is_authenticated else None
    if store is None:
        raise StoreNotFound()
    return store


def stores_for_user(*, user):
    return Store.objects.filter(owner=user).order_by("created_at")

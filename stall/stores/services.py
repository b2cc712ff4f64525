import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from stall.core.money import currency_normalize

from .errors import StoreInvalid
from .models import Store

RESERVED_SLUGS = {"api", "admin", "dashboard", "static", "media", "library", "login", "logout", "signup", "pay", "d", "healthz", "checkout", "buy", "webhooks", "new-store"}


EMBED_ORIGINS_MAX = 20
# An origin as CSP's frame-ancestors takes it: scheme, host (optionally "*." for its subdomains) and
# port, nothing else. Strict on purpose: the value goes into a response header, so a space, a ";"
# or a quote must never get through.
_ORIGIN = re.compile(r"(https?)://((?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::(\d{1,5}))?/?")


def embed_origins_clean(text: str) -> str:
    """The sites a creator lists for embedding, one a line (or separated by spaces or commas), as a
    newline-separated list of origins; the first one that is not an origin is refused by name."""
    origins: list[str] = []
    for raw in re.split(r"[\s,]+", (text or "").strip()):
        if not raw:
            continue
        match = _ORIGIN.fullmatch(raw.lower())
        port = match and match.group(3)
        if match is None or (port and not 0 < int(port) < 65536):
            raise StoreInvalid(
                f"“{raw[:100]}” is not a site's origin. Write it as https://example.com: the scheme and the host, "
                "with a port if it has one, no path.", param="embed_origins",
            )
        origin = f"{match.group(1)}://{match.group(2)}" + (f":{port}" if port else "")
        if origin not in origins:
            origins.append(origin)
    if len(origins) > EMBED_ORIGINS_MAX:
        raise StoreInvalid(f"List at most {EMBED_ORIGINS_MAX} sites.", param="embed_origins")
    return "\n".join(origins)


def _validated(store: Store) -> Store:
    if store.slug in RESERVED_SLUGS:
        raise StoreInvalid(f"“{store.slug}” is reserved; choose another address.", param="slug")
    try:
        # Uniqueness is left to the database (one race-free check), which answers "address is taken".
        store.full_clean(exclude=["owner"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise StoreInvalid(messages[0], param=None if field == "__all__" else field) from None
    return store


@transaction.atomic
def store_create(*, owner, name: str, slug: str = "", currency: str = "USD", bio: str = "", avatar=None) -> Store:
    currency = currency_normalize(currency)
    store = Store(owner=owner, name=(name or "").strip(), slug=(slug or slugify(name or ""))[:50], currency=currency, bio=bio or "")
    if avatar:
        store.avatar = avatar
    _validated(store)
    try:
        with transaction.atomic():
            store.save()
    except IntegrityError:
        raise StoreInvalid("That store address is taken.", param="slug") from None
    return store


@transaction.atomic
def store_update(*, store: Store, **fields) -> Store:
    store = Store.objects.select_for_update().get(pk=store.pk)
    if "currency" in fields:
        currency = currency_normalize(fields.pop("currency"))
        if currency != store.currency:
            if store.products.exists():
                raise StoreInvalid("The currency cannot change once the store has products.", param="currency")
            store.currency = currency
    for name in ("name", "slug", "bio", "support_email"):
        if name in fields and fields[name] is not None:
            setattr(store, name, fields[name].strip() if isinstance(fields[name], str) else fields[name])
    if fields.get("avatar"):
        store.avatar = fields["avatar"]
    if fields.get("embed_origins") is not None:
        store.embed_origins = embed_origins_clean(fields["embed_origins"])
    _validated(store)
    try:
        with transaction.atomic():
            store.save()
    except IntegrityError:
        raise StoreInvalid("That store address is taken.", param="slug") from None
    return store


def store_link_shared(*, store: Store) -> Store:
    """Note that the creator has their store's link in hand (copied it, or says they shared it); the
    first time counts, a second copy changes nothing."""
    Store.objects.filter(pk=store.pk, link_shared_at__isnull=True).update(link_shared_at=timezone.now())
    store.refresh_from_db(fields=["link_shared_at"])
    return store

import hashlib
import secrets

from django.db import connection, transaction
from django.utils import timezone
from ninja.security import HttpBearer

from stall.core.errors import NotFound
from stall.core.limits import limits_hit
from stall.core.rows import model_columns, model_from_row
from stall.stores.models import Store

from .models import ApiKey

SECRET_PREFIX = "sk_"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, store: Store, name: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its secret. The secret is not stored and cannot be shown again."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(store=store, name=(name or "").strip()[:100], prefix=secret[:11], secret_hash=secret_hash(secret))
    return key, secret


@transaction.atomic
def api_key_revoke(*, store: Store, key_id: str) -> ApiKey:
    key = ApiKey.objects.select_for_update().filter(store=store, pk=key_id).first()
    if key is None:
        raise NotFound("No such API key.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


# A live key by its secret's hash, with its store, in one SELECT written out: every API call makes
# it, and the ORM's building of the same query (select_related) was about a tenth of a checkout's
# two API calls (stall.core.rows says why).
_KEY_SQL = (
    f"SELECT {model_columns(ApiKey, 'k')}, {model_columns(Store, 's')} FROM integrations_apikey k "
    "JOIN stores_store s ON s.id = k.store_id WHERE k.secret_hash = %s AND k.revoked_at IS NULL"
)


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    if not secret or not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [secret_hash(secret)])
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(ApiKey._meta.concrete_fields)
    key = model_from_row(ApiKey, row[:width])
    key.store = model_from_row(Store, row[width:])
    # Counted only for a real key: a wrong one is refused before it costs anything.
    limits_hit(("api_key", key.pk), what="requests")
    now = timezone.now()
    # Note use at most once a minute: a write on every API call would contend for the write lock.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer <secret key>``: the request acts as the key's store."""

    def authenticate(self, request, token):
        key = api_key_authenticate(secret=token)
        if key is None:
            return None
        request.store = key.store
        request.api_key = key
        return key

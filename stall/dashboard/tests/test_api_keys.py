import re

import pytest

from stall.integrations.models import ApiKey
from stall.integrations.services import api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db


def test_api_key_create_shows_the_secret_once(dash, store):
    """Creating a key shows its working secret on the response page only, never in a URL or later pages."""
    response = dash.post(f"/dashboard/{store.slug}/api-keys/", {"name": "my website"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'value="(sk_[^"]+)"', response.content.decode()).group(1)
    key = ApiKey.objects.get()
    assert (key.store, key.name, key.prefix) == (store, "my website", secret[:11])
    assert api_key_authenticate(secret=secret) == key
    later = dash.get(f"/dashboard/{store.slug}/api-keys/").content.decode()
    assert secret not in later
    assert f"{key.prefix}…" in later
    assert "my website" in later


def test_api_key_list_shows_this_stores_keys(dash, store, other_creator):
    """The list shows this store's keys with their state, not another store's."""
    from stall.testing import StoreFactory

    revoked, _ = api_key_create(store=store, name="old")
    dash.post(f"/dashboard/{store.slug}/api-keys/{revoked.pk}/revoke/")
    theirs, _ = api_key_create(store=StoreFactory(owner=other_creator), name="theirs")

    page = dash.get(f"/dashboard/{store.slug}/api-keys/").content.decode()

    assert "old" in page and "Revoked" in page and "Never" in page
    assert "theirs" not in page and theirs.prefix not in page


def test_api_key_revoke(dash, store):
    """Revoking a key stops it from authenticating."""
    key, secret = api_key_create(store=store, name="leaked")

    response = dash.post(f"/dashboard/{store.slug}/api-keys/{key.pk}/revoke/")

    assert response["Location"] == f"/dashboard/{store.slug}/api-keys/"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_authenticate(secret=secret) is None
    assert f"Revoked the key {key.prefix}…." in dash.get(response["Location"]).content.decode()


def test_api_key_revoke_needs_post(dash, store):
    """A GET on the revoke address does not revoke."""
    key, _ = api_key_create(store=store)

    assert dash.get(f"/dashboard/{store.slug}/api-keys/{key.pk}/revoke/").status_code == 405
    key.refresh_from_db()
    assert key.revoked_at is None

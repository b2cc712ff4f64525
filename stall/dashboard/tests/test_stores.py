import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.stores.models import Store
from stall.testing import ProductFactory, StoreFactory

from .conftest import png

pytestmark = pytest.mark.django_db


def test_dashboard_without_a_store_leads_to_store_creation(dash):
    """A creator with no store is sent to the new-store page, which offers the currency select."""
    response = dash.get("/dashboard/")

    assert response["Location"] == "/dashboard/new-store/"
    page = dash.get("/dashboard/new-store/").content.decode()
    for code in ("USD", "EUR", "GBP", "KRW", "JPY", "BRL", "KWD"):
        assert f'<option value="{code}"' in page


def test_dashboard_with_a_store_leads_to_its_overview(dash, store):
    """A creator with a store is sent to the first store's overview."""
    assert dash.get("/dashboard/")["Location"] == f"/dashboard/{store.slug}/"


def test_store_create(dash, creator):
    """The new-store form creates the store for the logged-in creator and opens its overview."""
    response = dash.post("/dashboard/new-store/", {"name": "Ada's Notes", "slug": "", "currency": "KRW", "bio": "Hi *there*"})

    store = Store.objects.get()
    assert response["Location"] == "/dashboard/adas-notes/"
    assert (store.owner, store.name, store.slug, store.currency, store.bio) == (creator, "Ada's Notes", "adas-notes", "KRW", "Hi *there*")
    assert "Ada&#x27;s Notes is ready. Add your first product." in dash.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Notes", "slug": "bad slug!", "currency": "USD"},
         "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."),
        ({"name": "Notes", "slug": "dashboard", "currency": "USD"}, "“dashboard” is reserved; choose another address."),
        ({"name": "Notes", "slug": "new-store", "currency": "USD"}, "“new-store” is reserved; choose another address."),
        ({"name": "Notes", "slug": "notes", "currency": "XYZ"}, "Select a valid choice. XYZ is not one of the available choices."),
        ({"name": "", "slug": "notes", "currency": "USD"}, "This field is required."),
    ],
    ids=["bad-slug", "reserved-slug", "new-store-slug", "unknown-currency", "no-name"],
)
def test_store_create_refuses_bad_input(dash, data, message):
    """Bad input shows the reason on the form and creates no store."""
    response = dash.post("/dashboard/new-store/", data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Store.objects.exists()


def test_store_create_refuses_a_taken_slug(dash):
    """An address another creator already uses is refused; the other store is untouched."""
    StoreFactory(slug="taken", name="Theirs")

    response = dash.post("/dashboard/new-store/", {"name": "Mine", "slug": "taken", "currency": "USD"})

    assert response.status_code == 400
    assert "That store address is taken." in response.content.decode()
    assert list(Store.objects.values_list("name", flat=True)) == ["Theirs"]


def test_settings_update(dash, store):
    """Settings change the name, address, bio, support email and avatar, then show the new address."""
    response = dash.post(f"/dashboard/{store.slug}/settings/", {
        "name": "Renamed", "slug": "renamed", "bio": "**New** bio", "currency": "EUR",
        "support_email": "help@example.com", "avatar": png("me.png"),
    })

    assert response["Location"] == "/dashboard/renamed/settings/"
    store.refresh_from_db()
    assert (store.name, store.slug, store.bio, store.currency, store.support_email) == (
        "Renamed", "renamed", "**New** bio", "EUR", "help@example.com")
    assert store.avatar.name.startswith("avatars/me")
    page = dash.get(response["Location"]).content.decode()
    assert "Settings saved." in page
    assert f'src="{store.avatar.url}"' in page


def test_settings_currency_change_refused_once_products_exist(dash, store):
    """The currency cannot change once the store has products; the form says so and nothing changes."""
    ProductFactory(store=store)
    name = store.name

    response = dash.post(f"/dashboard/{store.slug}/settings/", {
        "name": "Renamed", "slug": store.slug, "bio": "", "currency": "EUR", "support_email": "",
    })

    assert response.status_code == 400
    assert "The currency cannot change once the store has products." in response.content.decode()
    store.refresh_from_db()
    assert (store.name, store.currency) == (name, "USD")


def test_settings_refuse_a_file_that_is_not_an_image_as_avatar(dash, store):
    """A text file posted as the avatar is refused and the store keeps no avatar."""
    response = dash.post(f"/dashboard/{store.slug}/settings/", {
        "name": store.name, "slug": store.slug, "bio": "", "currency": "USD", "support_email": "",
        "avatar": SimpleUploadedFile("me.png", b"not an image", content_type="image/png"),
    })

    assert response.status_code == 400
    assert "Upload a valid image." in response.content.decode()
    store.refresh_from_db()
    assert not store.avatar


def test_settings_refuse_a_slug_taken_by_another_store(dash, store):
    """Moving to an address another store has is refused; the store keeps its own."""
    StoreFactory(slug="taken")
    old_slug = store.slug

    response = dash.post(f"/dashboard/{store.slug}/settings/", {
        "name": store.name, "slug": "taken", "bio": "", "currency": "USD", "support_email": "",
    })

    assert response.status_code == 400
    assert "That store address is taken." in response.content.decode()
    store.refresh_from_db()
    assert store.slug == old_slug

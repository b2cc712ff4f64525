import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.catalog.models import Product, ProductFile
from stall.catalog.services import product_file_add
from stall.testing import ProductFactory, StoreFactory

from .conftest import png

pytestmark = pytest.mark.django_db


def product_data(**overrides):
    data = {
        "name": "Field Notes", "slug": "", "description": "Some *notes*.", "price_type": "fixed",
        "amount": "2.50", "suggested_amount": "", "status": "published", "download_limit": "5",
    }
    data.update(overrides)
    return data


def test_product_create_fixed_price(dash, store):
    """A fixed-price product is created in the store's currency with its file and published from the
    one form ("Publish"); its page opens with the preview link."""
    files = [SimpleUploadedFile("notes.pdf", b"%PDF- the notes", content_type="application/pdf")]
    response = dash.post(f"/dashboard/{store.slug}/products/new/",
                         product_data(cover=png(), files=files, action="publish"))

    product = Product.objects.get()
    assert response["Location"] == f"/dashboard/{store.slug}/products/{product.pk}/"
    assert (product.store, product.name, product.slug, product.amount, product.currency, product.price_type,
            product.status, product.download_limit, product.description) == (
        store, "Field Notes", "field-notes", 250, "USD", "fixed", "published", 5, "Some *notes*.")
    assert product.cover.name.startswith("covers/cover")
    assert list(product.files.values_list("name", "size", "content_type")) == [("notes.pdf", 15, "application/pdf")]
    page = dash.get(response["Location"]).content.decode()
    assert "“Field Notes” is on your store." in page
    assert f'href="/s/{store.slug}/field-notes/"' in page  # the preview link of a published product


def test_product_create_pay_what_you_want(dash, store):
    """A pay-what-you-want product keeps its minimum and suggested amount."""
    dash.post(f"/dashboard/{store.slug}/products/new/",
              product_data(price_type="pay_what_you_want", amount="1", suggested_amount="$5.00", slug="pwyw"))

    product = Product.objects.get()
    assert (product.price_type, product.amount, product.suggested_amount, product.slug) == ("pay_what_you_want", 100, 500, "pwyw")


def test_product_create_in_a_zero_decimal_currency(dash, creator):
    """In KRW, "3,000" is three thousand won and a decimal amount is refused."""
    store = StoreFactory(owner=creator, currency="KRW")

    dash.post(f"/dashboard/{store.slug}/products/new/", product_data(amount="3,000"))
    refused = dash.post(f"/dashboard/{store.slug}/products/new/", product_data(name="Other", amount="1.5"))

    assert list(Product.objects.values_list("amount", "currency")) == [(3000, "KRW")]
    assert refused.status_code == 400
    assert "KRW has no minor unit; enter a whole amount." in refused.content.decode()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"amount": "abc"}, "“abc” is not an amount."),
        ({"amount": "-1"}, "Amount cannot be negative."),
        ({"amount": "1.234"}, "USD amounts have at most 2 decimal places."),
        ({"amount": ""}, "This field is required."),
        ({"price_type": "pay_what_you_want", "amount": "5", "suggested_amount": "2"},
         "The suggested amount cannot be below the minimum."),
        ({"cover": SimpleUploadedFile("cover.png", b"plain text", content_type="image/png")},
         "Upload a valid image. The file you uploaded was either not an image or a corrupted image."),
        ({"download_limit": "0"}, "Ensure this value is greater than or equal to 1."),
    ],
    ids=["empty-name", "abc-price", "negative-price", "too-many-decimals", "no-price", "suggested-below-minimum",
         "cover-not-an-image", "zero-download-limit"],
)
def test_product_create_refuses_bad_input(dash, store, overrides, message):
    """Bad input shows the reason on the form and creates no product."""
    response = dash.post(f"/dashboard/{store.slug}/products/new/", product_data(**overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Product.objects.exists()


def test_product_create_refuses_a_slug_already_used_in_the_store(dash, store):
    """Two products of one store cannot share an address."""
    ProductFactory(store=store, slug="notes")

    response = dash.post(f"/dashboard/{store.slug}/products/new/", product_data(slug="notes"))

    assert response.status_code == 400
    assert "Another product of this store has that address." in response.content.decode()
    assert Product.objects.count() == 1


def test_product_edit_page_shows_current_values(dash, store):
    """The edit form is filled with the product's values, amounts as a person would type them."""
    product = ProductFactory(store=store, name="Zine", price_type="pay_what_you_want", amount=150, suggested_amount=1000)

    page = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()

    assert 'name="name" value="Zine"' in page
    assert 'name="amount" value="1.50"' in page
    assert 'name="suggested_amount" value="10.00"' in page


def test_product_edit(dash, store):
    """Editing changes the product; choosing a fixed price drops the suggested amount."""
    product = ProductFactory(store=store, price_type="pay_what_you_want", amount=100, suggested_amount=500)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/",
                         product_data(name="Renamed", slug="renamed", amount="7", suggested_amount="9", status="draft"))

    assert response["Location"] == f"/dashboard/{store.slug}/products/{product.pk}/"
    product.refresh_from_db()
    assert (product.name, product.slug, product.amount, product.suggested_amount, product.price_type, product.status) == (
        "Renamed", "renamed", 700, None, "fixed", "draft")
    page = dash.get(response["Location"]).content.decode()
    assert "Product saved." in page
    assert f'href="/s/{store.slug}/renamed/"' not in page  # no preview link for a draft


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"amount": "abc"}, "“abc” is not an amount."),
        ({"amount": "-1"}, "Amount cannot be negative."),
        ({"amount": "1.234"}, "USD amounts have at most 2 decimal places."),
        ({"price_type": "pay_what_you_want", "amount": "5", "suggested_amount": "4.99"},
         "The suggested amount cannot be below the minimum."),
        ({"cover": SimpleUploadedFile("cover.gif", b"GIF89a nope", content_type="image/gif")},
         "Upload a valid image. The file you uploaded was either not an image or a corrupted image."),
        ({"status": "deleted"}, "Select a valid choice. deleted is not one of the available choices."),
    ],
    ids=["empty-name", "abc-price", "negative-price", "too-many-decimals", "suggested-below-minimum", "cover-not-an-image",
         "unknown-status"],
)
def test_product_edit_refuses_bad_input(dash, store, overrides, message):
    """Bad input on the edit page shows the reason and leaves the product as it was."""
    product = ProductFactory(store=store, name="Kept", amount=300)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/", product_data(**overrides))

    assert response.status_code == 400
    assert message in response.content.decode()
    product.refresh_from_db()
    assert (product.name, product.amount, product.price_type, product.suggested_amount, bool(product.cover)) == (
        "Kept", 300, "fixed", None, False)


def test_product_list(dash, store):
    """The list shows each product's name, status, price and number of files, with an edit link."""
    published = ProductFactory(store=store, name="Sold Thing", amount=1234)
    upload = ContentFile(b"data", name="a.txt")
    product_file_add(product=published, upload=upload)
    product_file_add(product=published, upload=ContentFile(b"more", name="b.txt"))
    ProductFactory(store=store, name="Draft Thing", status="draft", price_type="pay_what_you_want", amount=0)
    ProductFactory(name="Someone else's")

    page = dash.get(f"/dashboard/{store.slug}/products/").content.decode()

    assert "Sold Thing" in page and "Draft Thing" in page
    assert "Someone else&#x27;s" not in page
    assert '<span class="badge badge-published">Published</span>' in page
    assert '<span class="badge badge-draft">Draft</span>' in page
    assert "$12.34" in page
    assert "Pay what you want" in page
    assert '<td class="c-files num">2<span class="show-sm"> files</span></td>' in page
    assert f'href="/dashboard/{store.slug}/products/{published.pk}/"' in page


def test_files_upload_several_at_once(dash, store):
    """One upload form post adds every chosen file, stored privately, and lists them with their sizes."""
    product = ProductFactory(store=store)
    files = [SimpleUploadedFile("one.txt", b"first file"), SimpleUploadedFile("two.zip", b"x" * 2048)]

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/", {"files": files})

    assert response["Location"] == f"/dashboard/{store.slug}/products/{product.pk}/#files"
    stored = list(ProductFile.objects.filter(product=product).values_list("name", "size"))
    assert stored == [("one.txt", 10), ("two.zip", 2048)]
    assert storages["private"].open(ProductFile.objects.get(name="one.txt").storage_name).read() == b"first file"
    page = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()
    assert "Added one.txt, two.zip." in page
    assert "2.0 KB" in page
    assert 'src="/static/dashboard/upload.js"' in page
    assert "multiple" in page.split('name="files"', 1)[1].split(">", 1)[0]


def test_files_upload_with_no_file_is_refused(dash, store):
    """Posting the upload form with nothing chosen says so and adds nothing."""
    product = ProductFactory(store=store)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/", {})

    assert response.status_code == 400
    assert "Choose at least one file to upload." in response.content.decode()
    assert not ProductFile.objects.exists()


def test_files_upload_refuses_an_empty_file(dash, store):
    """An empty file is refused by name."""
    product = ProductFactory(store=store)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/",
                         {"files": [SimpleUploadedFile("empty.txt", b"")]})

    assert response.status_code == 400
    assert "The submitted file is empty." in response.content.decode()
    assert not ProductFile.objects.exists()


def test_file_delete(dash, store, django_capture_on_commit_callbacks):
    """Deleting a file removes it from the product and from storage."""
    product = ProductFactory(store=store)
    kept = product_file_add(product=product, upload=ContentFile(b"keep", name="keep.txt"))
    gone = product_file_add(product=product, upload=ContentFile(b"gone", name="gone.txt"))

    with django_capture_on_commit_callbacks(execute=True):
        response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/{gone.pk}/delete/")

    assert response["Location"] == f"/dashboard/{store.slug}/products/{product.pk}/#files"
    assert list(ProductFile.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not storages["private"].exists(gone.storage_name)
    assert "Deleted gone.txt." in dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()


def test_file_delete_needs_post(dash, store):
    """A GET on the delete address changes nothing."""
    product = ProductFactory(store=store)
    file = product_file_add(product=product, upload=ContentFile(b"keep", name="keep.txt"))

    response = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/files/{file.pk}/delete/")

    assert response.status_code == 405
    assert ProductFile.objects.count() == 1


def test_file_of_another_product_cannot_be_deleted_through_this_one(dash, store):
    """A file id is looked up within the product in the address, even for the same store."""
    product = ProductFactory(store=store)
    other = ProductFactory(store=store)
    file = product_file_add(product=other, upload=ContentFile(b"keep", name="keep.txt"))

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/{file.pk}/delete/")

    assert response.status_code == 404
    assert ProductFile.objects.count() == 1

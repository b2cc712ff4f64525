"""A download is published only with a file to download (issue #13): the services and the API."""

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.catalog.errors import FileInvalid, ProductHasNoFiles
from stall.catalog.models import Product, ProductFile, ProductKind, ProductStatus
from stall.catalog.services import (
    product_create,
    product_file_add,
    product_file_delete,
    product_update,
)
from stall.content.services import post_create
from stall.demo import demo_create
from stall.testing import ProductFactory

pytestmark = pytest.mark.django_db


def error(response):
    return json.loads(response.content)["error"]


def upload(name="zine.txt", content=b"a zine\n"):
    return ContentFile(content, name=name)


def stored_for(store) -> set[str]:
    """The folders (one per stored file) under the store's part of the private storage."""
    storage, folder = storages["private"], f"products/{store.pk}"
    return set(storage.listdir(folder)[0]) if storage.exists(folder) else set()


def test_api_create_published_without_files_is_refused(api, store):
    """POST /products with status "published" answers the error object and creates nothing."""
    response = api.post("/products", {"name": "Zine", "amount": 300, "status": "published"})

    assert response.status_code == 400
    assert error(response) == {
        "code": "product_has_no_files", "param": "status",
        "message": "Add at least one file before publishing: buyers of a download get its files.",
    }
    assert not Product.objects.exists()


def test_api_publishing_a_draft_needs_a_file_first(api, store):
    """A draft is refused publication until a file is uploaded, then published."""
    product_id = json.loads(api.post("/products", {"name": "Zine", "amount": 300}).content)["id"]

    refused = api.post(f"/products/{product_id}", {"status": "published"})
    assert (refused.status_code, error(refused)["code"], error(refused)["param"]) == (400, "product_has_no_files", "status")
    assert Product.objects.get().status == ProductStatus.DRAFT

    added = api.upload(f"/products/{product_id}/files", {"file": SimpleUploadedFile("zine.pdf", b"%PDF-1.4 zine")})
    assert added.status_code == 200
    published = api.post(f"/products/{product_id}", {"status": "published"})
    assert (published.status_code, json.loads(published.content)["status"]) == (200, "published")


def test_create_with_files_publishes_in_one_step(store):
    """product_create stores the files it is given and publishes the download with them."""
    product = product_create(store=store, name="Zine", amount=300, status=ProductStatus.PUBLISHED,
                             files=[upload("a.txt", b"first"), upload("b.txt", b"second")])

    assert product.status == ProductStatus.PUBLISHED
    stored = list(product.files.order_by("name"))
    assert [(f.name, f.size) for f in stored] == [("a.txt", 5), ("b.txt", 6)]
    assert storages["private"].open(stored[1].storage_name).read() == b"second"


def test_create_with_a_bad_file_stores_nothing(store):
    """An empty file among the uploads refuses the whole product, by the file's name, before any
    byte is stored."""
    before = stored_for(store)

    with pytest.raises(FileInvalid) as refused:
        product_create(store=store, name="Zine", amount=300, status=ProductStatus.PUBLISHED,
                       files=[upload("good.txt"), SimpleUploadedFile("empty.txt", b"")])

    assert (refused.value.code, refused.value.param, refused.value.message) == (
        "invalid_file", "files", "empty.txt: The file is empty.")
    assert not Product.objects.exists() and not ProductFile.objects.exists()
    assert stored_for(store) == before


def test_posts_tips_and_draft_downloads_need_no_files(store):
    """Only downloads are held to the rule: a published post has no files, and a draft download may
    be saved without any."""
    post = post_create(store=store, title="Notes", body="Hello.", status=ProductStatus.PUBLISHED)
    draft = product_create(store=store, name="Later", amount=100)

    assert (post.product.kind, post.product.status) == (ProductKind.POST, ProductStatus.PUBLISHED)
    assert draft.status == ProductStatus.DRAFT


def test_a_product_published_before_the_rule_can_still_be_edited(store):
    """Only the step to published is checked: an old published download with no files keeps
    taking edits (so its creator can fix it) rather than being refused until unpublished."""
    old = ProductFactory(store=store, status=ProductStatus.PUBLISHED)

    edited = product_update(product=old, name="Renamed")

    assert (edited.name, edited.status) == ("Renamed", ProductStatus.PUBLISHED)


def test_the_last_file_of_a_published_download_cannot_be_deleted(store):
    """Deleting the only file would leave a download on sale with nothing in it: refused; with a
    second file, or once the product is a draft, the file goes."""
    product = product_create(store=store, name="Zine", amount=300, status=ProductStatus.PUBLISHED, files=[upload()])
    only = product.files.get()

    with pytest.raises(ProductHasNoFiles) as refused:
        product_file_delete(file=only)
    assert (refused.value.code, refused.value.param) == ("product_has_no_files", "file")
    assert product.files.count() == 1

    second = product_file_add(product=product, upload=upload("extra.txt"))
    product_file_delete(file=second)
    product_update(product=product, status=ProductStatus.DRAFT)
    product_file_delete(file=only)
    assert not product.files.exists()


def test_the_demo_store_publishes_each_product_with_its_file():
    """`make run`'s demo store still publishes: each of its downloads is created with its file."""
    result = demo_create(password="a demo password")

    products = Product.objects.filter(store=result.store)
    assert [(p.status, p.files.count()) for p in products] == [(ProductStatus.PUBLISHED, 1)] * 3

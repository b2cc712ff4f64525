"""A new creator's first sale (issue #13): the product form with files and the two buttons, the
publish rule on the pages, the first-steps checklist and the test purchase."""

import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from stall.catalog.models import Product, ProductFile, ProductStatus
from stall.catalog.services import product_file_add
from stall.checkout.models import Checkout
from stall.orders.models import Order
from stall.payments.models import StripeAccount
from stall.testing import ProductFactory, StoreFactory, buy, product_with_file

pytestmark = pytest.mark.django_db


def product_data(**overrides):
    data = {"name": "Field Notes", "slug": "", "description": "", "price_type": "fixed", "amount": "2.50",
            "suggested_amount": "", "download_limit": "5"}
    data.update(overrides)
    return data


def a_file(name="notes.pdf", content=b"%PDF- notes"):
    return SimpleUploadedFile(name, content, content_type="application/pdf")


def steps(page: str) -> dict[str, bool]:
    """Each first step of the overview's checklist: done or not."""
    return {key: bool(done) for done, key in re.findall(r'<li class="step( is-done)?" data-step="(\w+)"', page)}


# --- New product: files and the two buttons on one page ------------------------------------


def test_new_product_form_has_files_and_says_what_each_button_does(dash, store):
    """The form takes several files in the same multipart post and explains both buttons."""
    page = dash.get(f"/dashboard/{store.slug}/products/new/").content.decode()

    assert 'enctype="multipart/form-data"' in page
    assert re.search(r'<input type="file" name="files"[^>]* multiple', page)
    assert '<button type="submit" name="action" value="publish">Publish</button>' in page
    assert '<button type="submit" name="action" value="draft" class="btn-secondary">Save as draft</button>' in page
    assert "<strong>Publish</strong> puts it on your store for sale now; it needs at least one file." in page
    assert "<strong>Save as draft</strong> keeps it off your store until you publish it" in page
    assert 'name="status"' not in page


def test_publish_with_several_files(dash, store):
    """"Publish" with two files creates the product on sale with both files."""
    response = dash.post(f"/dashboard/{store.slug}/products/new/",
                         product_data(action="publish", files=[a_file("one.pdf"), a_file("two.zip", b"PK zip")]))

    product = Product.objects.get()
    assert response.status_code == 302
    assert product.status == ProductStatus.PUBLISHED
    assert sorted(product.files.values_list("name", flat=True)) == ["one.pdf", "two.zip"]


def test_publish_without_files_is_refused_and_nothing_is_created(dash, store):
    """"Publish" with no file answers the form with the reason next to Files; no product exists."""
    response = dash.post(f"/dashboard/{store.slug}/products/new/", product_data(action="publish"))

    assert response.status_code == 400
    page = response.content.decode()
    files_field = page.split('name="files"', 1)[1].split('<div class="field">', 1)[0]
    assert ("Add at least one file before publishing: buyers of a download get its files. "
            "Or save it as a draft and add files later.") in files_field
    assert not Product.objects.exists()


def test_save_as_draft_without_files(dash, store):
    """"Save as draft" needs no file; the product page then says how to publish."""
    response = dash.post(f"/dashboard/{store.slug}/products/new/", product_data(action="draft"))

    product = Product.objects.get()
    assert product.status == ProductStatus.DRAFT
    page = dash.get(response["Location"]).content.decode()
    assert "“Field Notes” is saved as a draft. Add the files buyers will download, then publish it." in page
    assert "To sell it, add its files under Files, then choose <strong>Published</strong> under Status and save." in page
    assert "Send a test purchase" not in page  # a draft cannot be bought, even as a test


def test_an_empty_file_refuses_the_product_by_name(dash, store):
    """A bad file among the chosen ones refuses the whole form by the file's name, and the form
    asks for the files again (a browser drops them on an answered form)."""
    response = dash.post(f"/dashboard/{store.slug}/products/new/",
                         product_data(action="publish", files=[a_file("good.pdf"), SimpleUploadedFile("blank.txt", b"")]))

    assert response.status_code == 400
    page = response.content.decode()
    assert "The submitted file is empty." in page  # Django's own check of each file, as on the upload form
    assert "Choose your files again: a browser does not keep them" in page
    assert not Product.objects.exists() and not ProductFile.objects.exists()


def test_a_file_over_the_size_limit_is_refused(dash, store, settings):
    """The service's size limit applies to the files of the new-product form too."""
    settings.STALL_MAX_UPLOAD_BYTES = 10

    response = dash.post(f"/dashboard/{store.slug}/products/new/",
                         product_data(action="publish", files=[a_file("big.pdf", b"x" * 11)]))

    assert response.status_code == 400
    assert "big.pdf: Files can be at most 0 MB." in response.content.decode()
    assert not Product.objects.exists() and not ProductFile.objects.exists()


# --- The edit page: publishing needs a file; the last file stays ---------------------------


def test_edit_page_refuses_publishing_a_draft_without_files(dash, store):
    """Choosing Published for a file-less draft shows the reason at Status and keeps it a draft."""
    product = ProductFactory(store=store, status=ProductStatus.DRAFT, amount=250, download_limit=5)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/", product_data(status="published"))

    assert response.status_code == 400
    status_field = response.content.decode().split('name="status"', 1)[1].split('<div class="field">', 1)[0]
    assert "Add at least one file before publishing: buyers of a download get its files." in status_field
    product.refresh_from_db()
    assert product.status == ProductStatus.DRAFT

    product_file_add(product=product, upload=ContentFile(b"zine", name="zine.txt"))
    dash.post(f"/dashboard/{store.slug}/products/{product.pk}/", product_data(status="published"))
    product.refresh_from_db()
    assert product.status == ProductStatus.PUBLISHED


def test_the_only_file_of_a_published_product_is_kept(dash, store):
    """Deleting the only file of a product on sale is refused with the reason; the file stays."""
    product = product_with_file(store=store)
    file = product.files.get()

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/files/{file.pk}/delete/", follow=True)

    assert "This is the product&#x27;s only file and the product is published" in response.content.decode()
    assert list(product.files.all()) == [file]


# --- The first steps on the overview --------------------------------------------------------


def test_a_new_store_shows_its_first_steps_and_link(dash, store):
    """A store with nothing yet: the store step is done, payments too (test cards are on here), the
    rest to do, with the store's full link to copy."""
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert steps(page) == {"store": True, "products": False, "payments": True, "published": False, "shared": False}
    assert '<span class="small muted" data-testid="steps-done">2 of 5 done</span>' in page
    assert f'<input type="text" id="store-link" value="http://testserver/s/{store.slug}/" readonly' in page
    assert f'href="/dashboard/{store.slug}/products/new/">Add a product</a>' in page


def test_the_steps_follow_the_store(dash, store):
    """A draft makes "first product" done, a published product "publish", a copied link "share"."""
    ProductFactory(store=store, status=ProductStatus.DRAFT)
    assert steps(dash.get(f"/dashboard/{store.slug}/").content.decode())["products"] is True
    assert steps(dash.get(f"/dashboard/{store.slug}/").content.decode())["published"] is False

    product_with_file(store=store)
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()
    assert (steps(page)["published"], steps(page)["shared"]) == (True, False)

    response = dash.post(f"/dashboard/{store.slug}/link-shared/", {"copied": "1"}, follow=True)
    assert "Link copied. Share it where your buyers are." in response.content.decode()
    store.refresh_from_db()
    assert store.link_shared_at is not None


def test_payments_step_without_test_cards_or_stripe(dash, store, settings):
    """With test cards off and no Stripe keys the payments step is to do; the store's own Stripe
    keys make it done."""
    settings.STALL_SANDBOX_ENABLED = False
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()
    assert steps(page)["payments"] is False
    assert "Connect Stripe so buyers can pay by card." in page

    StripeAccount.objects.create(store=store, secret_key="sk_test_x", publishable_key="pk_test_x")
    page = dash.get(f"/dashboard/{store.slug}/").content.decode()
    assert steps(page)["payments"] is True
    assert "Card payments go through Stripe." in page


def test_an_order_counts_as_shared_and_all_done_hides_the_checklist(dash, store):
    """A sale means the link reached a buyer: with a published product and payments, every step is
    done and the checklist is gone."""
    buy(store=store, product=product_with_file(store=store))

    page = dash.get(f"/dashboard/{store.slug}/").content.decode()

    assert 'data-testid="first-steps"' not in page
    assert "First steps" not in page


def test_marking_shared_without_copying(dash, store, creator):
    """"I've shared it" (no script) marks the step done with its own message, for this store only."""
    second = StoreFactory(owner=creator)

    response = dash.post(f"/dashboard/{store.slug}/link-shared/", follow=True)

    assert "Marked as shared." in response.content.decode()
    assert steps(response.content.decode())["shared"] is True
    assert steps(dash.get(f"/dashboard/{second.slug}/").content.decode())["shared"] is False


def test_link_shared_is_a_post_to_ones_own_store(dash, store, other_creator):
    """A GET changes nothing; another creator's store is not found."""
    theirs = StoreFactory(owner=other_creator)

    assert dash.get(f"/dashboard/{store.slug}/link-shared/").status_code == 405
    assert dash.post(f"/dashboard/{theirs.slug}/link-shared/").status_code == 404
    store.refresh_from_db()
    theirs.refresh_from_db()
    assert (store.link_shared_at, theirs.link_shared_at) == (None, None)


# --- Send a test purchase ---------------------------------------------------------------------


def test_test_purchase_buys_with_the_test_card_and_shows_the_order(dash, store, creator):
    """Where test cards are on, the button buys the product for the creator's own email with the
    test Visa and opens the order."""
    product = product_with_file(store=store, amount=400)
    page = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()
    assert "Send a test purchase</button>" in page
    assert f"Buys it for {creator.email} with the test Visa card" in page

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/test-purchase/")

    order = Order.objects.get()
    assert response["Location"] == f"/dashboard/{store.slug}/orders/{order.pk}/"
    assert (order.email, order.amount_total, order.payment.rail, order.payment.payment_method) == (
        creator.email, 400, "sandbox", "sandbox_visa")
    page = dash.get(response["Location"]).content.decode()
    assert f"Test purchase made: this is the order your buyer would make. The receipt went to {creator.email}." in page


def test_test_purchase_is_marked_test_where_the_sandbox_is_test_money(dash, store, settings):
    """Beside real money (the platform's Stripe keys) a test purchase is a test order, marked so."""
    settings.STRIPE_SECRET_KEY, settings.STALL_SANDBOX_ENABLED = "sk_test_platform", True
    product = product_with_file(store=store)

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/test-purchase/", follow=True)

    assert Order.objects.get().livemode is False
    assert '<span class="badge badge-test">Test</span>' in response.content.decode()


def test_test_purchase_where_test_cards_are_off_explains_stripe_test_keys(dash, store):
    """A store with its own live Stripe keys takes no test cards: the page explains how to test with
    Stripe's test keys, and a post anyway is refused with no checkout made."""
    StripeAccount.objects.create(store=store, secret_key="sk_live_x", publishable_key="pk_live_x")
    product = product_with_file(store=store)

    page = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()
    assert "Send a test purchase</button>" not in page
    assert '<summary class="btn btn-secondary">Send a test purchase</summary>' in page
    assert "put your Stripe <strong>test</strong> keys" in page
    assert "4242 4242 4242 4242" in page

    response = dash.post(f"/dashboard/{store.slug}/products/{product.pk}/test-purchase/", follow=True)
    assert "Test cards are turned off for this store: it takes real card payments." in response.content.decode()
    assert not Checkout.objects.exists() and not Order.objects.exists()


def test_test_purchase_with_stripe_test_keys_points_to_the_product_page(dash, store):
    """With the store's own Stripe test keys, the way to test is its product page and card 4242."""
    StripeAccount.objects.create(store=store, secret_key="sk_test_x", publishable_key="pk_test_x")
    product = product_with_file(store=store)

    page = dash.get(f"/dashboard/{store.slug}/products/{product.pk}/").content.decode()

    assert "This store's Stripe keys are test keys, so no real money moves" in page


def test_test_purchase_of_a_draft_or_another_stores_product(dash, store):
    """A draft cannot be bought, even as a test; another store's product is not found."""
    draft = ProductFactory(store=store, status=ProductStatus.DRAFT)
    theirs = product_with_file(store=ProductFactory().store)

    response = dash.post(f"/dashboard/{store.slug}/products/{draft.pk}/test-purchase/", follow=True)
    assert "No such product, or it is not for sale." in response.content.decode()
    assert dash.post(f"/dashboard/{store.slug}/products/{theirs.pk}/test-purchase/").status_code == 404
    assert not Order.objects.exists()

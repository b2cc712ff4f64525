import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from stall.catalog.models import Product, ProductStatus
from stall.orders.models import Order
from stall.stores.models import Store

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True, "has_touch": True}


def step_done(page, step: str):
    """One step of the overview's first steps, by its data-step."""
    return page.locator(f'li.step[data-step="{step}"]')


def test_a_new_creator_makes_a_first_sale_from_the_front_page(live_server, browser, phone, shot, tmp_path):
    """From `/`: Start selling, sign up, create the store, add a product with its file and publish
    it on one page, watch the first steps fill in, copy the store's link; a buyer opens that link
    on their phone and pays with the test Visa; the creator sees the sale on the overview."""
    phone.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = phone.new_page()
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sell your work directly to the people who want it.")
    shot(page, "1-landing")
    page.get_by_role("link", name="Start selling").click()

    expect(page).to_have_url(re.compile(r"/signup/$"))
    page.get_by_label("Email").fill("mira@example.com")
    page.get_by_label("Your name").fill("Mira")
    page.get_by_label("Password").fill("a long and happy password")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(re.compile(r"/dashboard/new-store/$"))
    page.get_by_label("Store name").fill("Mira's Zines")
    shot(page, "2-new-store")
    page.get_by_role("button", name="Create store").click()

    expect(page).to_have_url(re.compile(r"/dashboard/miras-zines/$"))
    expect(page.get_by_test_id("steps-done")).to_have_text("2 of 5 done")
    expect(step_done(page, "products")).not_to_have_class(re.compile("is-done"))
    expect(page.get_by_label("Your store's link")).to_have_value(f"{live_server.url}/s/miras-zines/")
    shot(page, "3-first-steps")
    page.get_by_role("link", name="Add a product").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("New product")
    page.get_by_label("Name").fill("Night Walks")
    page.get_by_label("Price (USD)").fill("3.00")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Add at least one file before publishing")).to_be_visible()
    assert not Product.objects.exists()
    shot(page, "4-publish-without-file")

    zine = tmp_path / "night-walks.pdf"
    zine.write_bytes(b"%PDF-1.4 twelve pages of night walks")
    page.get_by_label("Files").set_input_files(str(zine))
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("“Night Walks” is on your store."))
    expect(page.get_by_text("night-walks.pdf")).to_be_visible()
    expect(page.get_by_role("button", name="Send a test purchase")).to_be_visible()
    product = Product.objects.get()
    assert (product.status, [f.name for f in product.files.all()]) == (ProductStatus.PUBLISHED, ["night-walks.pdf"])
    shot(page, "5-published")

    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("steps-done")).to_have_text("4 of 5 done")
    for step in ("store", "products", "payments", "published"):
        expect(step_done(page, step)).to_have_class(re.compile("is-done"))
    expect(step_done(page, "shared")).not_to_have_class(re.compile("is-done"))
    shot(page, "6-four-of-five")
    page.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("status")).to_have_text("Link copied. Share it where your buyers are.")
    expect(page.get_by_test_id("first-steps")).to_have_count(0)  # all five done: the checklist is gone
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == f"{live_server.url}/s/miras-zines/"
    assert Store.objects.get().link_shared_at is not None
    shot(page, "7-link-copied")

    buyer_context = browser.new_context(**PHONE)
    try:
        buyer = buyer_context.new_page()
        buyer.goto(link)
        expect(buyer.get_by_role("heading", level=1)).to_have_text("Mira's Zines")
        buyer.get_by_role("link", name=re.compile("Night Walks")).click()
        buyer.get_by_role("link", name="Buy").click()
        buyer.get_by_label("Your email").fill("reader@example.com")
        buyer.get_by_role("button", name="Continue").click()
        buyer.get_by_role("button", name="Pay $3.00").click()
        expect(buyer).to_have_url(re.compile(r"/complete/$"))
        expect(buyer.get_by_role("link", name="Download")).to_be_visible()
        shot(buyer, "8-buyer-paid")
    finally:
        buyer_context.close()

    page.reload()
    expect(page.locator(".stats .card").filter(has_text="Orders").locator(".stat")).to_have_text("1")
    expect(page.locator("table.orders tbody tr .c-email")).to_have_text(["reader@example.com"])
    order = Order.objects.get()
    assert (order.email, order.amount_total, order.payment.payment_method) == ("reader@example.com", 300, "sandbox_visa")
    assert [m.subject for m in mail.outbox if m.to == ["reader@example.com"]] == ["Your receipt from Mira's Zines"]
    shot(page, "9-the-sale")

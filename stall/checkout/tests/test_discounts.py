"""Discount codes: pricing at checkout, the claim at payment, the limits, the API and the pages."""

import json
import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from stall.accounts.services import buyer_for_email
from stall.checkout.discounts import discount_create, discount_update
from stall.checkout.errors import DiscountRefused
from stall.checkout.models import Checkout, Discount, DiscountRedemption
from stall.checkout.services import CheckoutItem, checkout_create
from stall.core.errors import StallError
from stall.integrations.services import api_key_create
from stall.orders.checkout_pay import checkout_confirm
from stall.orders.models import Order
from stall.payments.models import Payment
from stall.payments.services import checkouts_expire_due
from stall.testing import ApiClient, ProductFactory, StoreFactory
from stall.wallets.tests.test_rails import assert_ledger_balanced


def body(response):
    return json.loads(response.content)


@pytest.fixture
def book(store):
    return ProductFactory(store=store, name="Book", amount=1000)


@pytest.fixture
def zine(store):
    return ProductFactory(store=store, name="Zine", amount=300)


def open_checkout(store, *products, code="", email="buyer@example.com", buyer=None):
    return checkout_create(store=store, email=email, items=[CheckoutItem(product_id=p.pk) for p in products],
                           discount_code=code, buyer=buyer)


# --- Pricing ----------------------------------------------------------------------------------------


def test_percent_code_is_priced_on_the_server_and_snapshotted(store, book, zine):
    """20% off a $10 book and a $3 zine takes $2.60 off, shared across the lines, and is snapshotted."""
    discount_create(store=store, code="spring", kind="percent", percent_off=20)
    checkout = open_checkout(store, book, zine, code=" Spring ")
    assert (checkout.amount_subtotal, checkout.amount_discount, checkout.amount_total) == (1300, 260, 1040)
    assert checkout.discount_code == "SPRING"
    assert [ln.amount_discount for ln in checkout.lines.order_by("pk")] == [200, 60]
    discount_update(discount=Discount.objects.get(), percent_off=50)
    checkout.refresh_from_db()
    assert checkout.amount_total == 1040  # a later change of the code leaves the snapshot alone


def test_fixed_code_on_chosen_products_only(store, book, zine):
    """$5 off the zine only takes at most the zine's $3; the book keeps its price."""
    discount_create(store=store, code="ZINE5", kind="fixed", amount_off=500, products=[zine.pk])
    checkout = open_checkout(store, book, zine, code="ZINE5")
    assert (checkout.amount_discount, checkout.amount_total) == (300, 1000)
    assert [ln.amount_discount for ln in checkout.lines.order_by("pk")] == [0, 300]
    with pytest.raises(DiscountRefused, match="does not apply to these products") as exc:
        open_checkout(store, book, code="ZINE5")
    assert exc.value.code == "discount_not_applicable"


@pytest.mark.parametrize(
    ("settings_", "code", "message"),
    [
        ({"ends_at": -1}, "discount_expired", "The code SPRING has expired."),
        ({"starts_at": 1}, "discount_not_started", "The code SPRING is not valid yet."),
        ({"minimum_subtotal": 2000}, "discount_minimum_not_met", "The code SPRING needs a subtotal of at least $20.00."),
        ({"active": False}, "discount_inactive", "The code SPRING is no longer active."),
    ],
)
def test_unusable_codes_are_refused_with_a_clear_reason(store, book, settings_, code, message):
    """An expired, not yet started, under-minimum or deactivated code opens no checkout."""
    now = timezone.now()
    kwargs = {k: (now + timedelta(days=v) if k in ("starts_at", "ends_at") else v) for k, v in settings_.items()}
    if "ends_at" in kwargs:
        kwargs["starts_at"] = now - timedelta(days=2)
    discount_create(store=store, code="SPRING", kind="percent", percent_off=10, **kwargs)
    with pytest.raises(DiscountRefused) as exc:
        open_checkout(store, book, code="spring")
    assert (exc.value.code, exc.value.message, exc.value.param) == (code, message, "discount_code")
    assert Checkout.objects.count() == 0


def test_unknown_code_and_another_stores_code_are_the_same_refusal(store, book):
    """A code of another store is unknown here."""
    discount_create(store=StoreFactory(), code="ELSEWHERE", kind="percent", percent_off=50)
    for code in ("NOPE", "ELSEWHERE"):
        with pytest.raises(DiscountRefused, match=f"There is no discount code {code} in this store.") as exc:
            open_checkout(store, book, code=code)
        assert exc.value.code == "discount_unknown"


def test_full_discount_makes_a_free_order_and_counts_a_use(store, book):
    """100% off: the checkout is free, completes with no payment, and the use is counted."""
    discount = discount_create(store=store, code="FREE", kind="percent", percent_off=100, max_uses=1)
    checkout = open_checkout(store, book, code="FREE")
    checkout = checkout_confirm(checkout_id=checkout.pk)
    assert checkout.status == "complete" and Payment.objects.count() == 0
    discount.refresh_from_db()
    assert discount.times_used == 1
    with pytest.raises(DiscountRefused, match="used up"):
        open_checkout(store, book, code="FREE", email="other@example.com")


# --- Claiming at payment ----------------------------------------------------------------------------


def test_paying_charges_the_discounted_total_and_the_order_keeps_line_discounts(
    store, book, zine, django_capture_on_commit_callbacks,
):
    discount = discount_create(store=store, code="TEN", kind="fixed", amount_off=100)
    checkout = open_checkout(store, book, zine, code="TEN")
    with django_capture_on_commit_callbacks(execute=True):
        checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    order = Order.objects.get(checkout=checkout)
    assert order.amount_total == 1200 and order.payment.amount == 1200
    assert sorted(ln.amount_discount for ln in order.lines.all()) == [23, 77]
    discount.refresh_from_db()
    assert discount.times_used == 1 and DiscountRedemption.objects.get().checkout_id == checkout.pk
    assert_ledger_balanced()
    receipt = mail.outbox[-1].body
    assert "Discount (TEN)  −$1.00" in receipt and "Total: $12.00" in receipt


def test_code_switched_off_between_page_and_payment_is_refused_and_nothing_is_charged(store, book):
    """The creator deactivates the code after the buyer opened the checkout: paying is refused with
    a clear message and no payment, order or use is recorded; the checkout stays open."""
    discount = discount_create(store=store, code="SPRING", kind="percent", percent_off=20)
    checkout = open_checkout(store, book, code="SPRING")
    discount_update(discount=discount, active=False)
    with pytest.raises(DiscountRefused, match="The code SPRING is no longer active.") as exc:
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert exc.value.code == "discount_inactive"
    assert (Payment.objects.count(), Order.objects.count(), DiscountRedemption.objects.count()) == (0, 0, 0)
    checkout.refresh_from_db()
    assert checkout.status == "open"


def test_code_that_expired_between_page_and_payment_is_refused(store, book, time_machine):
    discount_create(store=store, code="LAST", kind="percent", percent_off=20, ends_at=timezone.now() + timedelta(minutes=5))
    checkout = open_checkout(store, book, code="LAST")
    time_machine.move_to(timezone.now() + timedelta(minutes=10))
    with pytest.raises(DiscountRefused, match="has expired"):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    assert Payment.objects.count() == 0


def test_last_use_taken_by_another_checkout_is_refused_at_payment(store, book):
    discount_create(store=store, code="ONE", kind="percent", percent_off=20, max_uses=1)
    first = open_checkout(store, book, code="ONE", email="a@example.com")
    second = open_checkout(store, book, code="ONE", email="b@example.com")
    checkout_confirm(checkout_id=first.pk, payment_method="sandbox_visa")
    with pytest.raises(DiscountRefused, match="used up"):
        checkout_confirm(checkout_id=second.pk, payment_method="sandbox_visa")
    assert Order.objects.count() == 1


def test_declined_payment_keeps_its_claim_and_the_retry_takes_no_second_use(store, book):
    discount = discount_create(store=store, code="RETRY", kind="percent", percent_off=20, max_uses=1)
    checkout = open_checkout(store, book, code="RETRY")
    with pytest.raises(StallError):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_declined")
    checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_visa")
    discount.refresh_from_db()
    assert discount.times_used == 1 and Order.objects.count() == 1


def test_an_expired_unpaid_checkout_gives_its_use_back(store, book, time_machine):
    discount = discount_create(store=store, code="BACK", kind="percent", percent_off=20, max_uses=1)
    checkout = open_checkout(store, book, code="BACK")
    with pytest.raises(StallError):
        checkout_confirm(checkout_id=checkout.pk, payment_method="sandbox_declined")
    discount.refresh_from_db()
    assert discount.times_used == 1
    time_machine.move_to(timezone.now() + timedelta(days=2))
    assert checkouts_expire_due() == 1
    discount.refresh_from_db()
    assert discount.times_used == 0 and DiscountRedemption.objects.count() == 0


def test_once_per_customer_by_email_and_by_account(store, book):
    discount_create(store=store, code="HELLO", kind="percent", percent_off=10, once_per_customer=True)
    checkout_confirm(checkout_id=open_checkout(store, book, code="HELLO", email="Reader@Example.com").pk,
                     payment_method="sandbox_visa")
    with pytest.raises(DiscountRefused, match="You have already used the code HELLO.") as exc:
        open_checkout(store, book, code="HELLO", email="reader@example.com")
    assert exc.value.code == "discount_already_used"
    # The same account under another email: refused too.
    account = buyer_for_email(email="reader@example.com")
    with pytest.raises(DiscountRefused, match="already used"):
        open_checkout(store, book, code="HELLO", email="alias@example.com", buyer=account)
    # Two checkouts opened before either was paid: the second payment is refused.
    first = open_checkout(store, book, code="HELLO", email="new@example.com")
    second = open_checkout(store, book, code="HELLO", email="new@example.com")
    checkout_confirm(checkout_id=first.pk, payment_method="sandbox_visa")
    with pytest.raises(DiscountRefused, match="already used"):
        checkout_confirm(checkout_id=second.pk, payment_method="sandbox_visa")
    assert Order.objects.filter(email="new@example.com").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_last_uses_never_exceed_the_limit():
    """Eight buyers pay at once for a code with three uses left: three orders get it, five are refused."""
    store = StoreFactory()
    book = ProductFactory(store=store, amount=1000)
    discount = discount_create(store=store, code="RUSH", kind="percent", percent_off=50, max_uses=3)
    checkouts = [open_checkout(store, book, code="RUSH", email=f"b{i}@example.com") for i in range(8)]
    barrier, results = threading.Barrier(8), []

    def pay(checkout_id):
        barrier.wait()
        try:
            checkout_confirm(checkout_id=checkout_id, payment_method="sandbox_visa")
            results.append("paid")
        except DiscountRefused as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=pay, args=(c.pk,)) for c in checkouts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["discount_used_up"] * 5 + ["paid"] * 3
    discount.refresh_from_db()
    assert discount.times_used == 3
    assert Order.objects.count() == 3 and DiscountRedemption.objects.count() == 3


# --- The creator's settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"code": "x", "kind": "percent", "percent_off": 10}, "code"),
        ({"code": "OK", "kind": "percent", "percent_off": 0}, "percent_off"),
        ({"code": "OK", "kind": "percent", "percent_off": 101}, "percent_off"),
        ({"code": "OK", "kind": "fixed", "amount_off": 0}, "amount_off"),
        ({"code": "OK", "kind": "half", "percent_off": 10}, "kind"),
        ({"code": "OK", "kind": "percent", "percent_off": 10, "max_uses": 0}, "max_uses"),
        ({"code": "OK", "kind": "percent", "percent_off": 10, "products": ["prod_nope"]}, "products"),
    ],
)
def test_bad_settings_are_refused(store, kwargs, param):
    with pytest.raises(StallError) as exc:
        discount_create(store=store, **kwargs)
    assert exc.value.param == param
    assert Discount.objects.count() == 0


def test_codes_are_unique_per_store_without_regard_to_case(store):
    discount_create(store=store, code="SPRING", kind="percent", percent_off=10)
    with pytest.raises(StallError, match="another discount with that code"):
        discount_create(store=store, code="spring", kind="percent", percent_off=20)
    discount_create(store=StoreFactory(), code="SPRING", kind="percent", percent_off=20)  # another store: fine


def test_a_product_of_another_store_cannot_be_chosen(store):
    other = ProductFactory(store=StoreFactory())
    with pytest.raises(StallError, match=f"No such product: {other.pk}"):
        discount_create(store=store, code="MINE", kind="percent", percent_off=10, products=[other.pk])


# --- API ----------------------------------------------------------------------------------------------


def test_api_crud_and_scoping(api, store, client, book):
    created = body(api.post("/discounts", {"code": "spring", "kind": "percent", "percent_off": 20,
                                           "products": [book.pk], "max_uses": 10, "ends_at": 4102444800}))
    assert created["code"] == "SPRING" and created["products"] == [book.pk] and created["ends_at"] == 4102444800
    assert body(api.get("/discounts"))["data"][0]["id"] == created["id"]
    updated = body(api.post(f"/discounts/{created['id']}", {"kind": "fixed", "amount_off": 150}))
    assert (updated["kind"], updated["amount_off"], updated["percent_off"]) == ("fixed", 150, None)
    assert body(api.post(f"/discounts/{created['id']}/deactivate"))["active"] is False
    _, secret = api_key_create(store=StoreFactory(), name="other")
    other = ApiClient(client, secret)
    response = other.get(f"/discounts/{created['id']}")
    assert response.status_code == 404 and body(response)["error"]["code"] == "resource_missing"
    assert other.post(f"/discounts/{created['id']}", {"active": True}).status_code == 404
    response = api.client.delete(f"/api/v1/discounts/{created['id']}", headers={"Authorization": f"Bearer {api.secret}"})
    assert response.status_code == 200 and not Discount.objects.exists()


@pytest.mark.parametrize(
    ("payload", "status", "code", "param"),
    [
        ({"code": "A", "kind": "percent", "percent_off": 10}, 400, "invalid_discount", "code"),
        ({"code": "OK", "kind": "percent", "percent_off": 120}, 400, None, "percent_off"),
        ({"code": "OK", "kind": "fixed", "amount_off": "5"}, 400, None, "amount_off"),
        ({"code": "OK", "kind": "fixed"}, 400, "invalid_amount", "amount_off"),
        ({"code": "OK", "kind": "percent", "percent_off": 10, "ends_at": 100, "starts_at": 200}, 400, "invalid_discount", "ends_at"),
        ({"code": "OK", "kind": "percent", "percent_off": 10, "colour": "red"}, 400, None, "colour"),
    ],
)
def test_api_bad_input_is_a_clear_4xx(api, payload, status, code, param):
    response = api.post("/discounts", payload)
    assert response.status_code == status, response.content
    error = body(response)["error"]
    assert error["param"] == param and error["message"]
    if code:
        assert error["code"] == code


def test_api_checkout_with_discount_code(api, store, book):
    discount_create(store=store, code="SPRING", kind="percent", percent_off=25)
    created = body(api.post("/checkouts", {"email": "b@example.com", "product": book.pk, "discount_code": "spring"}))
    assert (created["amount_subtotal"], created["amount_discount"], created["amount_total"]) == (1000, 250, 750)
    assert created["discount_code"] == "SPRING" and created["lines"][0]["amount_discount"] == 250
    paid = body(api.post(f"/checkouts/{created['id']}/confirm", {"payment_method": "sandbox_visa"}))
    assert paid["status"] == "complete" and paid["payment"]["amount"] == 750
    order = body(api.get(f"/orders/{paid['order']}"))
    assert order["amount_total"] == 750 and order["lines"][0]["amount_discount"] == 250


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ({"ends_at": -1}, "discount_expired"),
        ({"starts_at": 1}, "discount_not_started"),
        ({"minimum_subtotal": 5000}, "discount_minimum_not_met"),
        ({"other_store": True}, "discount_unknown"),
        ({"unknown": True}, "discount_unknown"),
        ({"used_by_me": True}, "discount_already_used"),
    ],
)
def test_api_checkout_with_a_bad_code_is_refused_and_charges_nothing(api, store, book, setup, code):
    now = timezone.now()
    kwargs = {"code": "SPRING", "kind": "percent", "percent_off": 10}
    if "ends_at" in setup:
        kwargs |= {"starts_at": now - timedelta(days=2), "ends_at": now - timedelta(days=1)}
    if "starts_at" in setup:
        kwargs["starts_at"] = now + timedelta(days=1)
    if "minimum_subtotal" in setup:
        kwargs["minimum_subtotal"] = setup["minimum_subtotal"]
    if "used_by_me" in setup:
        kwargs["once_per_customer"] = True
    if "unknown" not in setup:
        discount_create(store=StoreFactory() if "other_store" in setup else store, **kwargs)
    if "used_by_me" in setup:
        checkout_confirm(checkout_id=open_checkout(store, book, code="SPRING", email="b@example.com").pk,
                         payment_method="sandbox_visa")
    before = (Checkout.objects.count(), Payment.objects.count())
    response = api.post("/checkouts", {"email": "b@example.com", "product": book.pk, "discount_code": "SPRING"})
    assert response.status_code == 400, response.content
    error = body(response)["error"]
    assert (error["code"], error["param"]) == (code, "discount_code") and "SPRING" in error["message"]
    assert (Checkout.objects.count(), Payment.objects.count()) == before


def test_api_confirm_after_the_code_was_deactivated_is_a_clear_400(api, store, book):
    discount = discount_create(store=store, code="SPRING", kind="percent", percent_off=25)
    created = body(api.post("/checkouts", {"email": "b@example.com", "product": book.pk, "discount_code": "SPRING"}))
    discount_update(discount=discount, active=False)
    response = api.post(f"/checkouts/{created['id']}/confirm", {"payment_method": "sandbox_visa"})
    assert response.status_code == 400
    assert body(response)["error"] == {
        "code": "discount_inactive", "message": "The code SPRING is no longer active.", "param": "discount_code",
    }
    assert Payment.objects.count() == 0


# --- Pages ---------------------------------------------------------------------------------------------


def test_shared_link_pre_applies_the_code_on_the_buy_page(client, store, book):
    discount_create(store=store, code="SPRING", kind="percent", percent_off=20)
    page = client.get(f"/s/{store.slug}/{book.slug}/?code=spring")
    assert "Code SPRING will be applied at checkout." in page.content.decode()
    buy = client.get(f"/buy/{book.pk}/")
    assert 'value="SPRING"' in buy.content.decode()
    response = client.post(f"/buy/{book.pk}/", {"email": "b@example.com", "discount_code": "SPRING"})
    checkout = Checkout.objects.get()
    assert response.status_code == 302 and checkout.amount_total == 800
    pay = client.get(f"/checkout/{checkout.pk}/").content.decode()
    assert "Discount (SPRING)" in pay and "$8.00" in pay and "$2.00" in pay


def test_buy_page_with_a_bad_code_says_why(client, store, book):
    response = client.post(f"/buy/{book.pk}/", {"email": "b@example.com", "discount_code": "NOPE"})
    assert response.status_code == 400
    assert "There is no discount code NOPE in this store." in response.content.decode()
    assert Checkout.objects.count() == 0


def test_pay_page_refuses_a_code_deactivated_since(client, store, book):
    discount = discount_create(store=store, code="SPRING", kind="percent", percent_off=20)
    client.post(f"/buy/{book.pk}/", {"email": "b@example.com", "discount_code": "SPRING"})
    checkout = Checkout.objects.get()
    discount_update(discount=discount, active=False)
    response = client.post(f"/checkout/{checkout.pk}/", {"payment_method": "sandbox_visa"})
    assert response.status_code == 400
    assert "The code SPRING is no longer active." in response.content.decode()
    assert Payment.objects.count() == 0


def test_dashboard_create_edit_deactivate(client, creator, store, book):
    client.force_login(creator)
    response = client.post(f"/dashboard/{store.slug}/discounts/new/", {"code": "spring", "kind": "percent", "percent_off": "15",
                                                                        "products": [book.pk], "max_uses": "5"})
    assert response.status_code == 302, response.content.decode()
    discount = Discount.objects.get()
    assert (discount.code, discount.percent_off, discount.max_uses) == ("SPRING", 15, 5)
    listing = client.get(f"/dashboard/{store.slug}/discounts/").content.decode()
    assert "SPRING" in listing and "?code=SPRING" in listing
    response = client.post(f"/dashboard/{store.slug}/discounts/{discount.pk}/", {"code": "SPRING", "kind": "fixed", "amount_off": "2.50"})
    assert response.status_code == 302
    discount.refresh_from_db()
    assert (discount.kind, discount.amount_off, discount.percent_off) == ("fixed", 250, None)
    client.post(f"/dashboard/{store.slug}/discounts/{discount.pk}/active/", {"active": "0"})
    discount.refresh_from_db()
    assert discount.active is False
    # Bad input: the form says what to fix.
    response = client.post(f"/dashboard/{store.slug}/discounts/new/", {"code": "x", "kind": "percent"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "Enter the percent off." in text
    # Another store's discount is a 404.
    other = discount_create(store=StoreFactory(), code="THEIRS", kind="percent", percent_off=5)
    assert client.get(f"/dashboard/{store.slug}/discounts/{other.pk}/").status_code == 404


def test_a_discounted_checkout_paid_from_the_wallet_charges_the_discounted_total(store, book):
    """The lean wallet spend charges full line prices, so a discounted checkout takes the general
    path: the wallet pays the discounted total, the use is claimed, the ledger balances."""
    from stall.wallets.services import wallet_top_up

    reader = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=reader, amount=2000, currency="USD", payment_method="sandbox_visa")
    discount = discount_create(store=store, code="WALLET", kind="fixed", amount_off=250, max_uses=1)
    checkout = open_checkout(store, book, code="WALLET", email=reader.email, buyer=reader)
    checkout = checkout_confirm(checkout_id=checkout.pk, payment_method="wallet", buyer=reader)
    order = Order.objects.get(checkout_id=checkout.pk)
    assert (order.amount_total, order.payment.amount, order.payment.rail) == (750, 750, "wallet")
    discount.refresh_from_db()
    assert discount.times_used == 1
    assert_ledger_balanced()


def test_api_far_timestamps_are_a_400_not_a_500(api):
    response = api.post("/discounts", {"code": "FAR", "kind": "percent", "percent_off": 5, "ends_at": 253402300800})
    assert response.status_code == 400 and body(response)["error"]["param"] == "ends_at"
    response = api.post("/discounts", {"code": "FAR", "kind": "percent", "percent_off": 5, "ends_at": 253402300799})
    assert response.status_code == 200 and body(response)["ends_at"] == 253402300799

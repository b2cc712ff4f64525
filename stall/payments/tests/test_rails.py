"""The payment rails interface and the built-in sandbox card rail."""

import re

import pytest

from stall.payments.rails import (
    RailResult,
    SandboxRail,
    UnknownPaymentMethod,
    UnknownRail,
    card_fee,
    card_minimum_charge,
    rail_for_payment_method,
    rail_get,
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("amount", "currency", "fee"),
    [
        (300, "USD", 39),  # 8.7¢ → 9¢ + 30¢
        (250, "USD", 37),  # 7.25¢ → 7¢ + 30¢
        (1550, "USD", 75),  # 44.95¢ → 45¢ + 30¢
        (50, "USD", 31),  # 1.45¢ → 1¢ + 30¢
        (1000, "EUR", 54),  # 29 + 25
        (10000, "KRW", 690),  # ₩290 + ₩400
        (1000, "JPY", 69),  # ¥29 + ¥40
        (10000, "KWD", 390),  # 290 fils + 100 fils
        (1000, "CHF", 59),  # not in the table: 0.30 CHF = 30
        (1000, "JOD", 229),  # 3 decimals, not in the processor's table: 30¢ worth, 0.21 → 0.200 JOD
    ],
)
def test_card_fee_is_2_9_percent_rounded_half_up_plus_a_fixed_fee(amount, currency, fee):
    """The simulated card fee is 2.9% (rounded half up) plus the processor's fixed fee for the currency."""
    assert card_fee(amount, currency) == fee


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [("USD", 50), ("EUR", 50), ("GBP", 30), ("KRW", 700), ("JPY", 50), ("KWD", 200), ("CHF", 50), ("JOD", 250)],
)
def test_card_minimum_charge_per_currency(currency, minimum):
    """Cards refuse charges below about 50¢ worth; the table gives the processors' figures, and a
    currency it does not name gets 50¢ worth as a round figure (0.35 JOD → 0.250)."""
    assert card_minimum_charge(currency) == minimum
    assert SandboxRail().minimum_charge(currency) == minimum


def test_payment_methods_resolve_to_their_rail():
    """Each sandbox test card belongs to the sandbox rail."""
    sandbox = rail_get("sandbox")
    assert [code for code, _ in sandbox.payment_methods()] == [
        "sandbox_visa", "sandbox_3ds", "sandbox_declined", "sandbox_insufficient_funds",
    ]
    for code, _ in sandbox.payment_methods():
        assert rail_for_payment_method(code) is sandbox


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("", "Choose a payment method."),
        (None, "Choose a payment method."),
        (42, "Choose a payment method."),
        ("visa", "Unknown payment method “visa”."),
    ],
)
def test_unknown_payment_methods_are_refused(method, message):
    """A method no rail offers is an error on the payment_method field."""
    with pytest.raises(UnknownPaymentMethod, match=exactly(message)) as caught:
        rail_for_payment_method(method)
    assert (caught.value.code, caught.value.param) == ("invalid_payment_method", "payment_method")


def test_unknown_rail_is_refused():
    """Asking for a rail that is not installed is an error naming the rail."""
    with pytest.raises(UnknownRail, match=exactly("Unknown payment rail “carrier_pigeon”.")):
        rail_get("carrier_pigeon")


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("sandbox_visa", RailResult("succeeded", reference="sbx_01abc", fee=39)),
        ("sandbox_3ds", RailResult("requires_action", reference="sbx_01abc")),
        ("sandbox_declined", RailResult("failed", "sbx_01abc", failure_code="card_declined", failure_message="Your card was declined.")),
        (
            "sandbox_insufficient_funds",
            RailResult("failed", "sbx_01abc", failure_code="insufficient_funds", failure_message="Your card has insufficient funds."),
        ),
    ],
)
def test_sandbox_test_cards_behave_as_documented(method, expected):
    """Each sandbox card gives its fixed outcome, with a reference derived from the payment id."""
    result = SandboxRail().payment_start(payment_id="pay_01abc", amount=300, currency="USD", payment_method=method)
    assert result == expected


def test_sandbox_refuses_a_card_it_does_not_know():
    """The sandbox names its cards when given another."""
    with pytest.raises(UnknownPaymentMethod) as caught:
        SandboxRail().payment_start(payment_id="pay_1", amount=300, currency="USD", payment_method="visa")
    assert caught.value.message == (
        "Unknown payment method “visa”. Use one of: sandbox_visa, sandbox_3ds, sandbox_declined, sandbox_insufficient_funds."
    )


@pytest.mark.django_db
def test_sandbox_3ds_confirmation_charges_the_fee_of_the_payment(store, product):
    """Approving 3-D Secure succeeds with the card fee of the payment's own amount; declining fails."""
    from stall.checkout.services import CheckoutItem, checkout_create
    from stall.payments.models import Payment

    checkout = checkout_create(store=store, email="b@example.com", items=[CheckoutItem(product_id=product.pk)])
    payment = Payment.objects.create(store=store, checkout=checkout, rail="sandbox", payment_method="sandbox_3ds", amount=1550, currency="USD")
    rail = SandboxRail()
    assert rail.payment_confirm(payment_id=payment.pk, reference="sbx_x", approve=True) == RailResult("succeeded", reference="sbx_x", fee=75)
    assert rail.payment_confirm(payment_id=payment.pk, reference="sbx_x", approve=False) == RailResult(
        "failed", "sbx_x", failure_code="authentication_failed", failure_message="The card's 3-D Secure check was not completed."
    )


def test_sandbox_refunds_succeed_and_sends_no_notifications():
    """Sandbox refunds always succeed; the sandbox never calls back."""
    rail = SandboxRail()
    assert rail.refund(payment_id="pay_01abc", reference="sbx_01abc", amount=100, currency="USD") == RailResult(
        "succeeded", reference="sbxre_01abc"
    )
    assert rail.notification_handle(headers={}, body=b"{}") == []

import pytest

from stall.accounts.services import buyer_for_email
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus
from stall.payments.rails import RailResult
from stall.payments.rails.wallet import wallet_for
from stall.payments.stripe_services import _stripe_result_apply

pytestmark = pytest.mark.django_db


def test_a_late_success_of_one_top_up_leaves_other_buyers_pending_payments_alone():
    """A top-up we had marked failed that Stripe later reports paid is credited; another buyer's
    top-up waiting on the Stripe page is untouched (top-ups share no checkout to be siblings of)."""
    first, second = buyer_for_email(email="a@example.com"), buyer_for_email(email="b@example.com")
    late = Payment.objects.create(
        purpose=PaymentPurpose.TOP_UP, buyer=first, rail="stripe", payment_method="stripe", amount=1000,
        currency="USD", status=PaymentStatus.FAILED, rail_reference="pi_late",
    )
    waiting = Payment.objects.create(
        purpose=PaymentPurpose.TOP_UP, buyer=second, rail="stripe", payment_method="stripe", amount=500,
        currency="USD", status=PaymentStatus.REQUIRES_ACTION, rail_reference="pi_waiting",
    )
    _stripe_result_apply(payment=late, result=RailResult("succeeded", reference="pi_late", fee=59))
    waiting.refresh_from_db()
    assert waiting.status == PaymentStatus.REQUIRES_ACTION
    assert Payment.objects.get(pk=late.pk).status == PaymentStatus.SUCCEEDED
    assert wallet_for(buyer=first, currency="USD").account.balance == 1000

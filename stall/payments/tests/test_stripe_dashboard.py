import pytest

from stall.payments.models import StripeAccount
from stall.testing import StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_creator_connects_stripe_in_the_dashboard(client, creator, store, localstripe, settings):
    """Valid keys are checked with Stripe (localstripe here), saved, and the page says Stripe is in use."""
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    client.force_login(creator)
    page = client.get(f"/dashboard/{store.slug}/payments/")
    assert "The built-in sandbox" in page.content.decode()
    assert f"/webhooks/stripe/{store.pk}" in page.content.decode()
    response = client.post(f"/dashboard/{store.slug}/payments/", {
        "secret_key": "sk_test_dashboard", "publishable_key": "pk_test_dashboard",
        "webhook_secret": "whsec_dashboard", "api_base": localstripe,
    })
    assert response.status_code == 302
    account = StripeAccount.objects.get(store=store)
    assert (account.secret_key, account.publishable_key, account.api_base) == ("sk_test_dashboard", "pk_test_dashboard", localstripe)
    page = client.get(f"/dashboard/{store.slug}/payments/").content.decode()
    assert "Your Stripe account" in page and "test mode" in page
    assert "sk_test_dashboard" not in page  # the secret is never shown back

    client.post(f"/dashboard/{store.slug}/payments/remove-stripe/")
    assert not StripeAccount.objects.filter(store=store).exists()


@pytest.mark.parametrize("data,message", [
    ({"secret_key": "nope", "publishable_key": "pk_test_x"}, "A Stripe secret key starts with sk_"),
    ({"secret_key": "sk_test_x", "publishable_key": "nope"}, "A Stripe publishable key starts with pk_."),
    ({"secret_key": "sk_live_x", "publishable_key": "pk_test_x"}, "One key is a test key and the other a live key"),
    ({"secret_key": "sk_test_x", "publishable_key": "pk_test_x", "webhook_secret": "abc"}, "A Stripe webhook signing secret starts with whsec_."),
    ({"publishable_key": "pk_test_x"}, "This field is required."),
])
def test_bad_keys_show_what_to_fix_and_save_nothing(client, creator, store, data, message):
    """Malformed or mismatched keys are refused on the form with a 400 and nothing is stored."""
    client.force_login(creator)
    response = client.post(f"/dashboard/{store.slug}/payments/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not StripeAccount.objects.exists()


def test_stripe_down_while_checking_keys_is_a_message_not_a_500(client, creator, store, closed_port_url, settings):
    """If Stripe cannot be reached to check the key, the form says so and nothing is saved."""
    settings.STRIPE_ALLOW_CUSTOM_API_BASE = True
    client.force_login(creator)
    response = client.post(f"/dashboard/{store.slug}/payments/", {
        "secret_key": "sk_test_x", "publishable_key": "pk_test_x", "api_base": closed_port_url,
    })
    assert response.status_code == 400
    assert "Stripe could not be reached to check the key." in response.content.decode()
    assert not StripeAccount.objects.exists()


def test_another_creator_cannot_see_or_change_the_payment_settings(client, store):
    """The payments page of a store is not found for a creator who does not own it."""
    stranger = UserFactory()
    StoreFactory(owner=stranger)
    client.force_login(stranger)
    assert client.get(f"/dashboard/{store.slug}/payments/").status_code == 404
    assert client.post(f"/dashboard/{store.slug}/payments/remove-stripe/").status_code == 404

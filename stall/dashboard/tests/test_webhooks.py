import pytest

from stall.integrations import webhooks
from stall.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEndpointStatus
from stall.integrations.tests.test_webhooks import Receiver
from stall.testing import StoreFactory, UserFactory, buy


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def test_creator_adds_an_endpoint_and_sees_its_secret(client, creator, store, receiver):
    """Adding an endpoint leads to its page, which shows the signing secret and is not cached."""
    client.force_login(creator)
    response = client.post(f"/dashboard/{store.slug}/webhooks/", {"url": receiver.url, "enabled_events": ["order.paid"]})
    endpoint = WebhookEndpoint.objects.get(store=store)
    assert response.status_code == 302 and response.url == f"/dashboard/{store.slug}/webhooks/{endpoint.pk}/"
    page = client.get(response.url)
    assert endpoint.secret in page.content.decode()
    assert page["Cache-Control"] == "no-store"


@pytest.mark.parametrize("data,message", [
    ({"url": "http://192.168.1.20/hook", "enabled_events": ["*"]}, "Webhooks cannot go to private, loopback or link-local addresses."),
    ({"url": "", "enabled_events": ["*"]}, "This field is required."),
    ({"url": "https://93.184.216.34/h"}, "This field is required."),
    ({"url": "https://93.184.216.34/h", "enabled_events": ["order.nope"]}, "Select a valid choice."),
])
def test_bad_endpoints_show_what_to_fix_and_create_nothing(client, creator, store, data, message):
    """A private address, a missing URL or no events: the form says what is wrong, with a 400, and nothing is saved."""
    client.force_login(creator)
    response = client.post(f"/dashboard/{store.slug}/webhooks/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_creator_rolls_pauses_redelivers_and_deletes(client, creator, store, product, receiver, django_capture_on_commit_callbacks):
    """Roll changes the secret; pause and enable flip the status; redeliver sends the event again; delete removes it."""
    client.force_login(creator)
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    base = f"/dashboard/{store.slug}/webhooks/{endpoint.pk}"
    old = endpoint.secret
    client.post(f"{base}/roll/")
    endpoint.refresh_from_db()
    assert endpoint.secret != old
    client.post(f"{base}/disable/")
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpointStatus.DISABLED
    client.post(f"{base}/enable/")
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpointStatus.ENABLED

    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=product)
    delivery = WebhookDelivery.objects.get()
    page = client.get(f"{base}/").content.decode()
    assert "order.paid" in page and "HTTP 200" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{base}/deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 302 and len(receiver.requests) == 2
    client.post(f"{base}/delete/")
    assert not WebhookEndpoint.objects.exists()


def test_another_creators_endpoints_are_not_found(client, store, receiver):
    """Every webhook URL of a store answers 404 to a creator who does not own it."""
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    stranger = UserFactory()
    StoreFactory(owner=stranger)
    client.force_login(stranger)
    base = f"/dashboard/{store.slug}/webhooks"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/{endpoint.pk}/").status_code == 404
    assert client.post(f"{base}/{endpoint.pk}/roll/").status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.status == WebhookEndpointStatus.ENABLED

import base64
import re
import time

import pytest

from stall.integrations import webhooks
from stall.integrations.models import WebhookDelivery
from stall.testing import StoreFactory, buy

from .test_webhooks import Receiver


@pytest.fixture
def receiver(settings):
    settings.STALL_WEBHOOK_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def test_endpoint_lifecycle_through_the_api(api, receiver):
    """An integrator registers, lists, updates, pauses, rolls the secret of and deletes an endpoint."""
    created = api.post("/webhook_endpoints", {"url": receiver.url, "enabled_events": ["order.paid"], "description": "shop"})
    assert created.status_code == 200, created.content
    body = created.json()
    assert body["object"] == "webhook_endpoint" and body["secret"].startswith("whsec_") and body["status"] == "enabled"
    assert len(base64.b64decode(body["secret"][6:])) == 24
    endpoint_id = body["id"]

    assert [e["id"] for e in api.get("/webhook_endpoints").json()["data"]] == [endpoint_id]
    updated = api.post(f"/webhook_endpoints/{endpoint_id}", {"enabled_events": ["*"], "disabled": True})
    assert (updated.json()["enabled_events"], updated.json()["status"]) == (["*"], "disabled")
    rolled = api.post(f"/webhook_endpoints/{endpoint_id}/roll_secret")
    assert rolled.json()["secret"] != body["secret"]
    deleted = api.client.delete(f"/api/v1/webhook_endpoints/{endpoint_id}", headers={"Authorization": f"Bearer {api.secret}"})
    assert deleted.json() == {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
    assert api.get(f"/webhook_endpoints/{endpoint_id}").status_code == 404


@pytest.mark.parametrize("payload,code,param", [
    ({"url": "http://10.0.0.5/hook", "enabled_events": ["*"]}, "webhook_target_forbidden", "url"),
    ({"url": "ftp://example.com", "enabled_events": ["*"]}, "invalid_webhook_endpoint", "url"),
    ({"url": "https://example.com/h", "enabled_events": []}, "invalid_webhook_endpoint", "enabled_events"),
    ({"url": "https://example.com/h", "enabled_events": ["order.nope"]}, "invalid_webhook_endpoint", "enabled_events"),
    ({"url": "https://example.com/h", "enabled_events": "order.paid"}, "invalid_request", "enabled_events"),
    ({"enabled_events": ["*"]}, "invalid_request", "url"),
    ({"url": 5, "enabled_events": ["*"]}, "invalid_request", "url"),
])
def test_bad_endpoints_are_refused_with_the_error_object(api, payload, code, param):
    """Bad URLs and event lists answer 400 with a code and the parameter at fault; nothing is created."""
    response = api.post("/webhook_endpoints", payload)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (code, param)
    assert api.get("/webhook_endpoints").json()["data"] == []


def test_another_stores_endpoint_is_not_found(api):
    """Endpoints of another store answer 404, for reads and writes."""
    other = webhooks.webhook_endpoint_create(store=StoreFactory(), url="https://93.184.216.34/h", enabled_events=["*"])
    assert api.get(f"/webhook_endpoints/{other.pk}").status_code == 404
    assert api.post(f"/webhook_endpoints/{other.pk}/roll_secret").status_code == 404
    assert api.get(f"/webhook_endpoints/{other.pk}/deliveries").status_code == 404


def test_delivery_log_and_redelivery_through_the_api(api, store, product, receiver, django_capture_on_commit_callbacks):
    """The delivery log shows each attempt's answer; redelivering sends the event again as a new delivery."""
    endpoint_id = api.post("/webhook_endpoints", {"url": receiver.url, "enabled_events": ["order.paid"]}).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        order = buy(store=store, product=product)
    log = api.get(f"/webhook_endpoints/{endpoint_id}/deliveries").json()["data"]
    assert [(d["event_type"], d["status"], d["response_status"], d["attempts"]) for d in log] == [("order.paid", "succeeded", 200, 1)]
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(f"/webhook_endpoints/{endpoint_id}/deliveries/{log[0]['id']}/redeliver")
    assert again.status_code == 200 and again.json()["event"] == log[0]["event"]
    assert WebhookDelivery.objects.count() == 2 and len(receiver.requests) == 2
    events = api.get("/events", {"type": "order.paid"}).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [order.pk]
    assert api.get(f"/events/{events[0]['id']}").json()["type"] == "order.paid"


def test_the_documented_python_snippet_verifies_a_real_delivery(store, product, receiver, django_capture_on_commit_callbacks):
    """The verification code on the API docs page accepts a genuine delivery and refuses a tampered one."""
    from stall.api import WEBHOOKS_DOC

    snippet = re.search(r"```python\n(.*?)```", WEBHOOKS_DOC, re.S).group(1)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation, run to prove it works
    genuine = namespace["stall_webhook_is_genuine"]
    endpoint = webhooks.webhook_endpoint_create(store=store, url=receiver.url, enabled_events=["*"])
    with django_capture_on_commit_callbacks(execute=True):
        buy(store=store, product=product)
    headers, body = receiver.requests[0]
    assert genuine(endpoint.secret, headers, body) is True
    assert genuine(endpoint.secret, headers, body + b" ") is False
    assert genuine(webhooks.secret_generate(), headers, body) is False
    stale = {**headers, "webhook-timestamp": str(int(time.time()) - 600)}
    assert genuine(endpoint.secret, stale, body) is False


def test_docs_page_carries_the_webhook_guide(client):
    """The OpenAPI description, shown on /api/v1/docs, explains how to verify a delivery."""
    spec = client.get("/api/v1/openapi.json").json()
    assert "stall_webhook_is_genuine" in spec["info"]["description"]
    assert "/api/v1/webhook_endpoints" in spec["paths"]

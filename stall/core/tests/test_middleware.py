"""What runs around a request: flash messages for pages, not for the API."""

import pytest

pytestmark = pytest.mark.django_db


def test_an_api_request_makes_no_message_storage_and_a_page_does(client, api):
    """The API's answers show no messages, so none are stored for it; the pages keep theirs."""
    answer = api.get("/checkouts/chk_nothere")
    assert answer.status_code == 404
    assert not hasattr(answer.wsgi_request, "_messages")
    page = client.get("/healthz")
    assert hasattr(page.wsgi_request, "_messages")

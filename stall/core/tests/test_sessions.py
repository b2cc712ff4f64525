"""Sessions read with one written-out SELECT: stall/core/sessions.py."""

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.utils import timezone

from stall.core.sessions import SessionStore


def test_a_saved_session_reads_back_and_an_expired_or_unknown_one_reads_empty(db):
    """What was saved reads back whole; a session past its expiry, or a key never issued, reads
    as an empty session and its key is dropped, as with Django's database sessions."""
    store = SessionStore()
    store["buyer"] = "buy_1"
    store.save()
    key = store.session_key
    assert SessionStore(session_key=key)["buyer"] == "buy_1"

    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    expired = SessionStore(session_key=key)
    assert expired.get("buyer") is None
    assert expired.session_key is None

    unknown = SessionStore(session_key="x" * 32)
    assert unknown.get("buyer") is None
    assert unknown.session_key is None

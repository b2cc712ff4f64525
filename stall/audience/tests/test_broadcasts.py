import smtplib
from collections import Counter
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone, translation

from stall.accounts.services import buyer_for_email
from stall.audience import broadcasts as bc
from stall.audience.errors import BroadcastInvalid
from stall.audience.models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    Subscriber,
    SubscriberStatus,
)
from stall.audience.segments import recipients
from stall.audience.services import subscriber_suppress
from stall.campaigns.services import campaign_create, campaign_publish, pledge_cancel, pledge_create
from stall.content.services import post_create
from stall.memberships.services import subscription_complimentary_create
from stall.memberships.tiers import tier_create
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, StoreFactory, buy
from stall.wallets.services import wallet_top_up

from .conftest import subscribe

PAID_BODY = "The free opening.\n\nA second free paragraph.\n\nThe paid ending."


def _sending(store, n, **kwargs):
    for i in range(n):
        subscribe(store, f"r{i}@example.com")
    broadcast = bc.broadcast_create(store=store, subject="News", body="Hello **there**.", **kwargs)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=BroadcastStatus.SENDING, started_at=timezone.now())
    broadcast.refresh_from_db()
    return broadcast


def _statuses(broadcast):
    return Counter(Delivery.objects.filter(broadcast=broadcast).values_list("status", flat=True))


def test_segments_are_exact(store, zine):
    """Each segment is its people who are subscribed, and nobody else."""
    poster = ProductFactory(store=store, name="Poster")
    post = post_create(store=store, title="Notes", amount=100, body=PAID_BODY, status="published")
    tier = tier_create(store=store, name="Friends", prices=[{"interval": "month", "amount": 500}])
    for email in ("zine@example.com", "refunded@example.com", "poster@example.com", "member@example.com", "reader@example.com", "gone@example.com"):
        subscribe(store, email)
    buy(store=store, product=zine, email="zine@example.com")
    refund_create(store=store, order_id=buy(store=store, product=zine, email="refunded@example.com").pk)
    buy(store=store, product=zine, email="unlisted@example.com")  # bought, never subscribed
    buy(store=store, product=zine, email="gone@example.com")
    subscriber_suppress(store=store, email="gone@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    buy(store=store, product=poster, email="poster@example.com")
    buy(store=store, product=post.product, email="reader@example.com")
    subscription_complimentary_create(tier=tier, email="member@example.com", ends_at=timezone.now() + timedelta(days=30))
    other = StoreFactory()
    subscribe(other, "elsewhere@example.com")

    assert list(recipients(store=store, segment="product", ref=zine.pk)) == ["zine@example.com"]
    assert list(recipients(store=store, segment="product", ref=poster.pk)) == ["poster@example.com"]
    assert list(recipients(store=store, segment="tier", ref=tier.pk)) == ["member@example.com"]
    assert list(recipients(store=store, segment="post", ref=post.pk)) == ["reader@example.com"]
    assert list(recipients(store=store, segment="subscribers")) == [
        "member@example.com", "poster@example.com", "reader@example.com", "refunded@example.com", "zine@example.com"]


def test_a_segment_must_name_one_of_the_stores_own_objects(store, zine):
    other_product = ProductFactory(store=StoreFactory())
    buy(store=other_product.store, product=other_product)
    with pytest.raises(BroadcastInvalid, match="Choose one for “Buyers of a product”"):
        bc.broadcast_create(store=store, subject="Hi", body="Text", segment="product", segment_ref=other_product.pk)
    with pytest.raises(BroadcastInvalid, match="Write a subject."):
        bc.broadcast_create(store=store, subject=" ", body="Text")


def test_sending_from_the_page_reaches_each_subscriber_once_with_one_click_headers(
        signed_in, store, django_capture_on_commit_callbacks):
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        subscribe(store, email)
    subscribe(store, "gone@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    response = signed_in.post(reverse("dashboard:broadcast_new", args=[store.slug]),
                              {"subject": "Spring zine", "body": "It is *out*.", "segment": "subscribers"})
    broadcast = Broadcast.objects.get(store=store)
    assert response.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(reverse("dashboard:broadcast_send", args=[store.slug, broadcast.pk]), {"action": "send"})
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.com", "b@example.com", "c@example.com"]
    message = mail.outbox[0]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert unsubscribe in message.body and "/list/unsubscribe/" in unsubscribe
    assert "<em>out</em>" in message.alternatives[0][0]
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.SENT
    page = signed_in.get(reverse("dashboard:broadcast", args=[store.slug, broadcast.pk]))
    assert b"3 of 3 sent" in page.content
    # The address in the header unsubscribes that recipient with one POST.
    client_path = unsubscribe.replace("http://127.0.0.1:8000", "")
    signed_in.logout()
    signed_in.post(client_path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert Subscriber.objects.get(store=store, email=message.to[0]).status == SubscriberStatus.UNSUBSCRIBED


class WorkerKilled(BaseException):
    """The worker process dying: not an Exception, so nothing in the sender catches it."""


class DiesAfterThree(EmailBackend):
    sent = 0

    def send_messages(self, messages):
        count = super().send_messages(messages)  # the message has left
        DiesAfterThree.sent += count
        if DiesAfterThree.sent == 3:
            raise WorkerKilled()  # ... and the worker dies before recording it
        return count


def test_a_send_interrupted_halfway_and_resumed_reaches_each_recipient_once(store):
    broadcast = _sending(store, 6)
    DiesAfterThree.sent = 0
    with override_settings(EMAIL_BACKEND="stall.audience.tests.test_broadcasts.DiesAfterThree"):
        with pytest.raises(WorkerKilled):
            bc.broadcast_send(broadcast_id=broadcast.pk, batch=2)
    assert len(mail.outbox) == 3
    assert _statuses(broadcast) == {"sent": 2, "sending": 1, "pending": 3}

    assert bc.broadcast_send(broadcast_id=broadcast.pk, batch=2) is True  # the resumed task
    assert bc.broadcast_send(broadcast_id=broadcast.pk, batch=2) is True  # and a doubled one
    received = Counter(m.to[0] for m in mail.outbox)
    assert received == {f"r{i}@example.com": 1 for i in range(6)}
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.SENDING  # the claimed row may still be in flight
    with time_machine.travel(timezone.now() + bc.CLAIM_LEASE + timedelta(seconds=1)):
        assert broadcast.pk in bc.broadcasts_stalled()
        assert bc.broadcast_send(broadcast_id=broadcast.pk) is True
    broadcast.refresh_from_db()
    assert broadcast.status == BroadcastStatus.SENT
    assert _statuses(broadcast) == {"sent": 5, "failed": 1}
    assert len(mail.outbox) == 6  # the unconfirmed one was not sent again


def test_two_workers_never_send_the_same_delivery(store):
    """The claim is the guard: a second worker finds the rows already claimed or sent."""
    broadcast = _sending(store, 4)
    bc.broadcast_recipients_write(broadcast=broadcast)
    assert bc.broadcast_recipients_write(broadcast=broadcast) == 0  # written once
    first = bc.broadcast_send_batch(broadcast=broadcast, limit=10)
    second = bc.broadcast_send_batch(broadcast=broadcast, limit=10)
    assert (first, second, len(mail.outbox)) == (4, 0, 4)


class RefusesOne(EmailBackend):
    def send_messages(self, messages):
        if messages[0].to == ["r1@example.com"]:
            raise smtplib.SMTPRecipientsRefused({"r1@example.com": (550, b"No such user")})
        return super().send_messages(messages)


def test_a_refused_address_is_marked_bounced_and_the_rest_are_sent(store):
    broadcast = _sending(store, 3)
    with override_settings(EMAIL_BACKEND="stall.audience.tests.test_broadcasts.RefusesOne"):
        assert bc.broadcast_send(broadcast_id=broadcast.pk) is True
    assert sorted(m.to[0] for m in mail.outbox) == ["r0@example.com", "r2@example.com"]
    assert Subscriber.objects.get(store=store, email="r1@example.com").status == SubscriberStatus.BOUNCED
    assert _statuses(broadcast) == {"sent": 2, "failed": 1}


def test_someone_who_unsubscribes_during_the_send_is_skipped(store):
    broadcast = _sending(store, 3)
    bc.broadcast_recipients_write(broadcast=broadcast)
    subscriber_suppress(store=store, email="r2@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    bc.broadcast_send(broadcast_id=broadcast.pk)
    assert sorted(m.to[0] for m in mail.outbox) == ["r0@example.com", "r1@example.com"]
    assert _statuses(broadcast) == {"sent": 2, "skipped": 1}


def test_a_scheduled_broadcast_starts_at_its_time(store):
    subscribe(store, "a@example.com")
    broadcast = bc.broadcast_create(store=store, subject="Later", body="Text")
    with pytest.raises(BroadcastInvalid, match="Choose a time in the future"):
        bc.broadcast_schedule(broadcast=broadcast, at=timezone.now() - timedelta(minutes=1))
    at = timezone.now() + timedelta(hours=2)
    bc.broadcast_schedule(broadcast=broadcast, at=at)
    assert bc.broadcasts_due() == []
    assert bc.broadcasts_due(now=at + timedelta(seconds=1)) == [broadcast.pk]
    assert bc.broadcast_send(broadcast_id=broadcast.pk) is True
    assert [m.to[0] for m in mail.outbox] == ["a@example.com"]


def test_a_test_send_goes_to_the_creator_only(signed_in, store, creator):
    subscribe(store, "a@example.com")
    broadcast = bc.broadcast_create(store=store, subject="Draft", body="Text")
    signed_in.post(reverse("dashboard:broadcast_test", args=[store.slug, broadcast.pk]))
    assert [(m.to[0], m.subject) for m in mail.outbox] == [(creator.email, "[Test] Draft")]
    assert not Delivery.objects.exists()


def test_emailing_a_paid_post_sends_its_preview_and_a_link(signed_in, store):
    post = post_create(store=store, title="Notes", amount=25, body=PAID_BODY, status="published")
    response = signed_in.post(reverse("dashboard:post_broadcast", args=[store.slug, post.pk]))
    broadcast = Broadcast.objects.get(store=store)
    assert response.url == reverse("dashboard:broadcast", args=[store.slug, broadcast.pk])
    assert broadcast.subject == "Notes" and "The free opening." in broadcast.body
    assert "The paid ending." not in broadcast.body
    assert f"/s/{store.slug}/posts/{post.slug}/" in broadcast.body
    free = post_create(store=store, title="Free", amount=0, body=PAID_BODY, status="published")
    signed_in.post(reverse("dashboard:post_broadcast", args=[store.slug, free.pk]))
    assert "The paid ending." in Broadcast.objects.get(store=store, subject="Free").body


def test_broadcast_pages_refuse_bad_input_and_other_stores(signed_in, store):
    response = signed_in.post(reverse("dashboard:broadcast_new", args=[store.slug]), {"subject": "", "body": "x", "segment": "subscribers"})
    assert response.status_code == 400 and b"This field is required." in response.content
    response = signed_in.post(reverse("dashboard:broadcast_new", args=[store.slug]), {"subject": "Hi", "body": "x", "segment": "tier"})
    assert response.status_code == 400 and "Choose one for “Members of a tier”".encode() in response.content
    other = bc.broadcast_create(store=StoreFactory(), subject="Theirs", body="x")
    assert signed_in.get(reverse("dashboard:broadcast", args=[store.slug, other.pk])).status_code == 404
    assert signed_in.post(reverse("dashboard:broadcast_send", args=[store.slug, other.pk])).status_code == 404


def test_the_backers_of_a_campaign_are_a_segment(store):
    """Backers who still stand behind the campaign, subscribed: not one who cancelled, not another
    campaign's backer."""
    def campaign(title):
        return campaign_publish(campaign=campaign_create(
            store=store, title=title, goal=1000, deadline=timezone.now() + timedelta(days=30)))

    moss, fern = campaign("Moss"), campaign("Fern")
    backers = {}
    for email in ("backer@example.com", "quitter@example.com", "fern@example.com", "quiet@example.com"):
        backers[email] = buyer_for_email(email=email)
        wallet_top_up(buyer=backers[email], amount=500, currency="USD", payment_method="sandbox_visa")
        if email != "quiet@example.com":
            subscribe(store, email)
    pledge_create(campaign=moss, buyer=backers["backer@example.com"], amount=25, method="wallet")
    pledge_create(campaign=moss, buyer=backers["quiet@example.com"], amount=25, method="wallet")  # not subscribed
    pledge_cancel(pledge=pledge_create(campaign=moss, buyer=backers["quitter@example.com"], amount=25, method="wallet"))
    pledge_create(campaign=fern, buyer=backers["fern@example.com"], amount=25, method="wallet")

    assert list(recipients(store=store, segment="campaign", ref=moss.pk)) == ["backer@example.com"]
    assert list(recipients(store=store, segment="campaign", ref=fern.pk)) == ["fern@example.com"]


def test_the_footer_is_in_each_subscribers_language(client, signed_in, store, zine, django_capture_on_commit_callbacks):
    """Joined from a Korean sign-up form, a Portuguese checkout (ticking "email me") and an
    import (no language known: the default): one broadcast, each footer in its reader's language,
    the creator's own words as written. The dashboard's preview stays English."""
    from stall.checkout.models import Checkout
    from stall.orders.checkout_pay import checkout_confirm

    other = type(client)()
    with django_capture_on_commit_callbacks(execute=True):
        other.post(f"/s/{store.slug}/subscribe/", {"email": "mina@example.com"}, headers={"accept-language": "ko"})
    mina = Subscriber.objects.get(store=store, email="mina@example.com")
    assert (mina.status, mina.language) == (SubscriberStatus.PENDING, "ko")
    Subscriber.objects.filter(pk=mina.pk).update(status=SubscriberStatus.SUBSCRIBED)
    other.post(f"/buy/{zine.pk}/", {"email": "ana@example.com", "email_consent": "on"}, headers={"accept-language": "pt-br"})
    with django_capture_on_commit_callbacks(execute=True):
        checkout_confirm(checkout_id=Checkout.objects.get(email="ana@example.com").pk, payment_method="sandbox_visa")
    assert Subscriber.objects.get(store=store, email="ana@example.com").language == "pt-br"
    subscribe(store, "joe@example.com")
    mail.outbox.clear()

    broadcast = bc.broadcast_create(store=store, subject="Spring zine", body="It is *out*.")
    with django_capture_on_commit_callbacks(execute=True):
        bc.broadcast_schedule(broadcast=broadcast)
    sent = {m.to[0]: m for m in mail.outbox}
    assert sorted(sent) == ["ana@example.com", "joe@example.com", "mina@example.com"]
    footers = {"mina@example.com": "구독 해지", "ana@example.com": "Cancelar inscrição", "joe@example.com": "Unsubscribe"}
    for email, word in footers.items():
        message = sent[email]
        unsubscribe = message.extra_headers["List-Unsubscribe"].strip("<>")
        assert f"{word}: {unsubscribe}" in message.body
        assert f'<a href="{unsubscribe}">{word}</a>' in message.alternatives[0][0]
        assert "It is *out*." in message.body and "<em>out</em>" in message.alternatives[0][0]
    with translation.override("en"):  # as on the dashboard (English), whatever the last request left on
        assert ">Unsubscribe</a>" in bc.broadcast_preview(broadcast=broadcast)


def test_a_plain_text_broadcast_is_not_html_escaped(store):
    """The text part carries the creator's words as typed: "&" and "<" stay themselves."""
    subscribe(store, "a@example.com")
    broadcast = bc.broadcast_create(store=store, subject="Tea", body="Tom & Jerry <3")
    message = bc._message(broadcast=broadcast, to="a@example.com")
    assert message.body.startswith("Tom & Jerry <3\n")

"""Broadcasts: write, preview, test, schedule or send now, and the sending itself.

Sending is resumable and never sends one broadcast to one address twice:
1. the recipients are written once, as one ``Delivery`` row per address (unique per broadcast),
   when sending starts — the segment is read then, and only subscribed addresses are in it;
2. a worker claims a row (``pending`` → ``sending``, a conditional UPDATE that only one worker can
   win) and commits the claim *before* handing the message to the mail server, then marks it
   ``sent``;
3. a worker that dies leaves at most the row it was sending claimed; that row is not retried
   (the server may have taken the message) and is reported as unconfirmed. Everything still
   ``pending`` is sent by the next task: the periodic sweep restarts a broadcast that stopped.
"""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from huey.contrib.djhuey import db_task

from stall.content.models import Post
from stall.content.selectors import post_split_for
from stall.core.languages import language_for
from stall.core.markdown import render_markdown
from stall.stores.models import Store

from .errors import BroadcastInvalid
from .models import (
    Broadcast,
    BroadcastStatus,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from .segments import recipients, segment_get
from .services import subscriber_bounce, unsubscribe_url

# A claimed row older than this belongs to a worker that died while sending it.
CLAIM_LEASE = timedelta(minutes=10)
INSERT_CHUNK = 2000


def _checked(*, store: Store, subject: str, body: str, segment: str, segment_ref: str) -> dict:
    subject, body, segment_ref = (subject or "").strip(), (body or "").strip(), (segment_ref or "").strip()
    if not subject:
        raise BroadcastInvalid("Write a subject.", param="subject")
    if len(subject) > 200:
        raise BroadcastInvalid("The subject is at most 200 characters.", param="subject")
    if not body:
        raise BroadcastInvalid("Write the email.", param="body")
    if len(body) > 100_000:
        raise BroadcastInvalid("The email is at most 100,000 characters.", param="body")
    found = segment_get(segment)
    if found is None:
        raise BroadcastInvalid("Choose who gets it.", param="segment")
    if found.choices is None:
        segment_ref = ""
    elif segment_ref not in {str(ref) for ref, _ in found.choices(store=store)}:
        raise BroadcastInvalid(f"Choose one for “{found.label}”.", param="segment_ref")
    return {"subject": subject, "body": body, "segment": segment, "segment_ref": segment_ref}


def broadcast_create(*, store: Store, subject: str, body: str, segment: str = "subscribers", segment_ref: str = "") -> Broadcast:
    values = _checked(store=store, subject=subject, body=body, segment=segment, segment_ref=segment_ref)
    return Broadcast.objects.create(store=store, **values)


def broadcast_update(*, broadcast: Broadcast, subject: str, body: str, segment: str, segment_ref: str = "") -> Broadcast:
    if broadcast.status not in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED):
        raise BroadcastInvalid("A broadcast that has started sending cannot be changed.", param="status")
    values = _checked(store=broadcast.store, subject=subject, body=body, segment=segment, segment_ref=segment_ref)
    for key, value in values.items():
        setattr(broadcast, key, value)
    broadcast.save(update_fields=list(values))
    return broadcast


def broadcast_from_post(*, post: Post) -> Broadcast:
    """A draft broadcast of a post: the whole text of a free post, the free preview of a paid one,
    with a link to read it on the store."""
    split = post_split_for(post)
    url = settings.BASE_URL + reverse("content:post", args=[post.store.slug, post.slug])
    if post.is_free or not split.rest:
        body = f"{split.full}\n\n[Read it on {post.store.name}]({url})"
    else:
        body = f"{split.preview}\n\n**[Read the rest on {post.store.name}]({url})**"
    return Broadcast.objects.create(store=post.store, subject=post.title[:200], body=body, segment="subscribers")


def broadcast_recipient_count(*, broadcast: Broadcast) -> int:
    return recipients(store=broadcast.store, segment=broadcast.segment, ref=broadcast.segment_ref).count()


# Where each recipient's own unsubscribe address goes in a body rendered once per batch.
_UNSUBSCRIBE_SLOT = "stall-unsubscribe-slot"


def _bodies(broadcast: Broadcast, language: str = "") -> tuple[str, str]:
    """The text and HTML bodies, rendered once per language (Markdown and templates are the costly
    part): the creator's words as written, the footer's in the recipient's ``language`` (a
    subscriber's recorded one; "" is the default)."""
    context = {"store": broadcast.store, "text": broadcast.body, "html": render_markdown(broadcast.body),
               "unsubscribe_url": _UNSUBSCRIBE_SLOT, "base_url": settings.BASE_URL}
    with translation.override(language_for(language)):
        return (render_to_string("audience/email/broadcast.txt", context), render_to_string("audience/email/broadcast.html", context))


def _message(*, broadcast: Broadcast, to: str, connection=None, bodies: tuple[str, str] | None = None) -> EmailMultiAlternatives:
    store = broadcast.store
    text, html = bodies or _bodies(broadcast)
    unsubscribe = unsubscribe_url(store_id=store.pk, email=to)
    message = EmailMultiAlternatives(
        subject=broadcast.subject, body=text.replace(_UNSUBSCRIBE_SLOT, unsubscribe),
        from_email=settings.DEFAULT_FROM_EMAIL, to=[to], connection=connection,
        reply_to=[store.support_email] if store.support_email else None,
        headers={
            # RFC 8058: a mail client's "unsubscribe" button POSTs "List-Unsubscribe=One-Click" here.
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Precedence": "bulk",
        },
    )
    message.attach_alternative(html.replace(_UNSUBSCRIBE_SLOT, unsubscribe), "text/html")
    return message


def broadcast_preview(*, broadcast: Broadcast) -> str:
    """The message's HTML body (without the document around it), to show on the page."""
    return render_to_string("audience/email/_broadcast_body.html", {
        "store": broadcast.store, "html": render_markdown(broadcast.body),
        "unsubscribe_url": "#", "base_url": settings.BASE_URL,
    })


def broadcast_send_test(*, broadcast: Broadcast, to: str) -> None:
    """The email as a recipient gets it, to the creator; nothing is recorded."""
    message = _message(broadcast=broadcast, to=to)
    message.subject = f"[Test] {message.subject}"
    message.send()


@transaction.atomic
def broadcast_schedule(*, broadcast: Broadcast, at=None) -> Broadcast:
    """Send at ``at`` (a future time), or now when ``at`` is None."""
    broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    if broadcast.status not in (BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED):
        raise BroadcastInvalid("This broadcast has already been sent.", param="status")
    now = timezone.now()
    if at is not None and at > now:
        broadcast.status, broadcast.scheduled_at = BroadcastStatus.SCHEDULED, at
        broadcast.save(update_fields=["status", "scheduled_at"])
        return broadcast
    if at is not None:
        raise BroadcastInvalid("Choose a time in the future, or send now.", param="scheduled_at")
    broadcast.status, broadcast.started_at = BroadcastStatus.SENDING, now
    broadcast.save(update_fields=["status", "started_at"])
    # Who gets it is fixed now, when the creator presses send (one INSERT per 2,000 recipients),
    # and the page can count down from the first moment.
    broadcast_recipients_write(broadcast=broadcast)
    transaction.on_commit(lambda: broadcast_send_task(broadcast.pk))
    return broadcast


def broadcast_unschedule(*, broadcast: Broadcast) -> Broadcast:
    updated = Broadcast.objects.filter(pk=broadcast.pk, status=BroadcastStatus.SCHEDULED).update(
        status=BroadcastStatus.DRAFT, scheduled_at=None)
    if not updated:
        raise BroadcastInvalid("Only a scheduled broadcast can go back to draft.", param="status")
    broadcast.refresh_from_db()
    return broadcast


def broadcasts_due(*, now=None) -> list[str]:
    """Start the scheduled broadcasts whose time has come; returns their ids."""
    now = now or timezone.now()
    started = []
    for pk in Broadcast.objects.filter(status=BroadcastStatus.SCHEDULED, scheduled_at__lte=now).values_list("pk", flat=True):
        if Broadcast.objects.filter(pk=pk, status=BroadcastStatus.SCHEDULED).update(status=BroadcastStatus.SENDING, started_at=now):
            started.append(pk)
    return started


def broadcast_recipients_write(*, broadcast: Broadcast) -> int:
    """Write one delivery row per recipient, once (a second call, or a second worker, adds nothing)."""
    if broadcast.recipients_at is not None:
        return 0
    emails = recipients(store=broadcast.store, segment=broadcast.segment, ref=broadcast.segment_ref).distinct()
    written, chunk = 0, []
    with transaction.atomic():
        if Broadcast.objects.select_for_update().filter(pk=broadcast.pk, recipients_at__isnull=True).first() is None:
            return 0
        for email in emails.iterator(chunk_size=INSERT_CHUNK):
            chunk.append(Delivery(broadcast_id=broadcast.pk, email=email))
            if len(chunk) >= INSERT_CHUNK:
                Delivery.objects.bulk_create(chunk, ignore_conflicts=True)
                written, chunk = written + len(chunk), []
        if chunk:
            Delivery.objects.bulk_create(chunk, ignore_conflicts=True)
            written += len(chunk)
        broadcast.recipients_at = timezone.now()
        Broadcast.objects.filter(pk=broadcast.pk).update(recipients_at=broadcast.recipients_at)
    return written


def broadcast_send_batch(*, broadcast: Broadcast, limit: int = 200, connection=None) -> int:
    """Send up to ``limit`` pending deliveries; returns how many were handed to the mail server."""
    rows = list(Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.PENDING).order_by("pk").values_list("pk", "email")[:limit])
    if not rows:
        return 0
    # Re-read the list now: someone who unsubscribed or bounced since sending started is skipped.
    still = dict(Subscriber.objects.filter(store_id=broadcast.store_id, status=SubscriberStatus.SUBSCRIBED,
                                           email__in=[email for _, email in rows]).values_list("email", "language"))
    skipped = [pk for pk, email in rows if email not in still]
    if skipped:
        Delivery.objects.filter(pk__in=skipped, status=DeliveryStatus.PENDING).update(status=DeliveryStatus.SKIPPED, error="Unsubscribed or bounced before sending.")
    sent = 0
    bodies: dict[str, tuple[str, str]] = {}  # language -> bodies, rendered at its first recipient
    connection = connection or get_connection()
    connection.open()
    try:
        for pk, email in rows:
            if email not in still:
                continue
            # The claim, committed before the message leaves: the one statement that makes a second
            # send impossible, whoever else is sending this broadcast.
            if not Delivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING).update(status=DeliveryStatus.SENDING, claimed_at=timezone.now()):
                continue
            try:
                language = still[email]
                if language not in bodies:
                    bodies[language] = _bodies(broadcast, language)
                _message(broadcast=broadcast, to=email, connection=connection, bodies=bodies[language]).send()
            except smtplib.SMTPRecipientsRefused as exc:
                Delivery.objects.filter(pk=pk).update(status=DeliveryStatus.FAILED, error=str(exc)[:255])
                subscriber_bounce(store=broadcast.store, email=email)
                continue
            except (smtplib.SMTPException, OSError):
                # The server took nothing (it refused or could not be reached): the row goes back to
                # waiting and the batch stops, to be tried again by the next task.
                Delivery.objects.filter(pk=pk, status=DeliveryStatus.SENDING).update(status=DeliveryStatus.PENDING, claimed_at=None)
                raise
            Delivery.objects.filter(pk=pk).update(status=DeliveryStatus.SENT, sent_at=timezone.now())
            sent += 1
    finally:
        connection.close()
    return sent


def broadcast_finish_if_done(*, broadcast: Broadcast, now=None) -> bool:
    """Mark the broadcast sent when nothing is waiting. A row still claimed past its lease was
    being sent by a worker that died: it is reported as unconfirmed, never sent again."""
    now = now or timezone.now()
    pending = Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.PENDING).exists()
    if pending:
        return False
    Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENDING, claimed_at__lt=now - CLAIM_LEASE).update(
        status=DeliveryStatus.FAILED, error="Interrupted while sending; not sent again in case it arrived.")
    if Delivery.objects.filter(broadcast=broadcast, status=DeliveryStatus.SENDING).exists():
        return False
    return bool(Broadcast.objects.filter(pk=broadcast.pk, status=BroadcastStatus.SENDING).update(status=BroadcastStatus.SENT, finished_at=now))


def broadcast_send(*, broadcast_id: str, budget_seconds: float = 50.0, batch: int | None = None) -> bool:
    """Send a broadcast in batches for up to ``budget_seconds``; True when it is finished (else
    the caller queues the rest)."""
    broadcast = Broadcast.objects.select_related("store").filter(pk=broadcast_id, status=BroadcastStatus.SENDING).first()
    if broadcast is None:
        return True
    broadcast_recipients_write(broadcast=broadcast)
    batch = batch or settings.STALL_BROADCAST_BATCH
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        if not broadcast_send_batch(broadcast=broadcast, limit=batch) and not Delivery.objects.filter(
                broadcast=broadcast, status=DeliveryStatus.PENDING).exists():
            break
    return broadcast_finish_if_done(broadcast=broadcast) or not Delivery.objects.filter(
        broadcast=broadcast, status=DeliveryStatus.PENDING).exists()


def broadcasts_stalled(*, now=None, quiet=timedelta(minutes=2)) -> list[str]:
    """Broadcasts still sending with nothing claimed lately: their task was lost (a crash)."""
    now = now or timezone.now()
    stalled = []
    for broadcast in Broadcast.objects.filter(status=BroadcastStatus.SENDING):
        latest = Delivery.objects.filter(broadcast=broadcast).exclude(claimed_at=None).order_by("-claimed_at").values_list("claimed_at", flat=True).first()
        if (latest or broadcast.started_at or now) <= now - quiet:
            stalled.append(broadcast.pk)
    return stalled


@db_task(retries=3, retry_delay=30)
def broadcast_send_task(broadcast_id: str) -> None:
    """Send for a while, then queue the rest as a new task, so one broadcast never holds a worker
    for long and a restart loses at most one batch's claim."""
    if not broadcast_send(broadcast_id=broadcast_id, budget_seconds=settings.STALL_BROADCAST_TASK_SECONDS):
        broadcast_send_task(broadcast_id)

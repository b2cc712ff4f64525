"""The creator's notifications: an email on each sale, tip, new member and refund, each of which
they can turn off, an email on each chargeback (which cannot be turned off: a dispute has a
deadline for the evidence), and a daily digest they can turn on.

Read from the outbox (``integrations.Event``), which every domain already writes in the same
transaction as the change, so nothing below audience knows this exists and the one-click spend
pays nothing for it. A per-store cursor (``events_seen_at``) says how far each store was read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from stall.accounts.models import Customer
from stall.catalog.models import Product, ProductKind
from stall.core.email import email_send
from stall.core.ids import id_floor
from stall.core.money import format_money
from stall.integrations.models import Event
from stall.orders.models import Order
from stall.stores.models import Store

from .models import NotificationSettings

TYPES = (
    "order.paid", "tip.created", "subscription.created", "order.refunded", "pledge.created", "order.disputed",
    "dispute.closed",
)
# Events younger than this are left for the next run: a transaction that began earlier may still
# commit an event stamped before the cursor.
SETTLE = timedelta(seconds=5)
# A store's first read starts this far back, not at the beginning of its history.
FIRST_LOOK_BACK = timedelta(minutes=10)
# At most this many emails to a store's owner a run (the sweep runs every minute); past it, one
# more email says how many events were left. A launch that sells thousands in a minute sends its
# creator 21 emails, not thousands, and the events are read a page at a time, never all at once:
# a million events in one window held 1.4 GB in the task worker and took a core for minutes.
EMAILS_PER_RUN = 20
EVENTS_PER_READ = 500
DISPUTE_TYPES = ("order.disputed", "dispute.closed")


def _floor(moment) -> str:
    # Event ids, not created_at (which has no index), bound the time windows read here.
    return id_floor("evt", moment)


SETTING_FOR_KIND = {
    "sale": "on_sale", "tip": "on_tip", "member": "on_member", "refund": "on_refund_request", "pledge": "on_pledge",
    "dispute": None,  # always told
}


def notification_settings_for(*, store: Store) -> NotificationSettings:
    found, _ = NotificationSettings.objects.get_or_create(store=store, defaults={"events_seen_at": timezone.now()})
    return found


def notification_settings_update(*, store: Store, **values) -> NotificationSettings:
    found = notification_settings_for(store=store)
    fields = [k for k in values if k in {"on_sale", "on_tip", "on_member", "on_refund_request", "on_pledge", "daily_digest"}]
    for key in fields:
        setattr(found, key, bool(values[key]))
    found.save(update_fields=fields)
    return found


def _describe(event: Event, kinds: dict[str, str]) -> tuple[str, str] | None:
    """(kind, one line) for an event worth telling, None for one that is told by another event."""
    obj = event.data.get("object", {})
    if event.type == "order.paid":
        line_kinds = {kinds.get(line["product"]) for line in obj.get("lines", [])}
        # Tips and memberships are told by their own events; an API charge is usage, not a sale.
        if not line_kinds - {ProductKind.TIP, ProductKind.MEMBERSHIP, ProductKind.CHARGE, None}:
            return None
        names = ", ".join(line["name"] for line in obj.get("lines", []))
        test = "" if obj.get("livemode", True) else " (test)"
        return "sale", f"New sale{test}: {names} — {format_money(obj['amount_total'], obj['currency'], 'en')} from {obj['email']}"
    if event.type == "tip.created":
        words = f": “{obj['message']}”" if obj.get("message") else ""
        return "tip", f"New tip: {format_money(obj['amount'], obj['currency'], 'en')} from {obj.get('name') or obj['email']}{words}"
    if event.type == "subscription.created":
        return "member", f"New member: {obj['email']}"
    if event.type == "pledge.created":
        words = f": “{obj['message']}”" if obj.get("message") else ""
        amount = obj.get("amount") or {}
        return "pledge", f"New pledge: {format_money(amount['amount'], amount['currency'], 'en')} from {obj['email']}{words}"
    if event.type == "order.refunded":
        refund = obj.get("refund") or {}
        amount = refund.get("amount", obj.get("amount_refunded", 0))
        return "refund", f"Refund: {format_money(amount, obj['currency'], 'en')} to {obj['email']} (order {obj['id']})"
    if event.type in DISPUTE_TYPES:
        dispute = obj.get("dispute") or {}
        money = format_money(dispute.get("amount", 0), dispute.get("currency", obj["currency"]), "en")
        if event.type == "order.disputed":
            due = dispute.get("evidence_due_by")
            by = f"; evidence due by {datetime.fromtimestamp(due, tz=UTC):%b %-d, %Y}" if due else ""
            reason = str(dispute.get("reason") or "").replace("_", " ") or "no reason given"
            return "dispute", f"Chargeback: {obj['email']} disputed {money} (order {obj['id']}, {reason}){by}"
        outcome = {"won": "won", "lost": "lost", "closed": "closed (inquiry)"}.get(obj.get("dispute_status"), "closed")
        return "dispute", f"Chargeback {outcome}: {money} of order {obj['id']} ({obj['email']})"
    return None


def _notify(store: Store, line: str, *, subject: str = "") -> None:
    email_send(to=store.owner.email, subject=f"{store.name}: {subject or line[:120]}", template="audience/email/notification",
               context={"store": store, "line": line, "dashboard_url": f"{settings.BASE_URL}/dashboard/{store.slug}/"})


def _told(window, found: NotificationSettings):
    """(event, line) for each event of ``window`` that the store's settings tell, read a page at a time."""
    after = None
    while events := list((window if after is None else window.filter(pk__gt=after))[:EVENTS_PER_READ]):
        after = events[-1].pk
        product_ids = {line["product"] for e in events if e.type == "order.paid" for line in e.data.get("object", {}).get("lines", [])}
        kinds = dict(Product.objects.filter(pk__in=product_ids).values_list("pk", "kind"))
        for event in events:
            described = _describe(event, kinds)
            setting = SETTING_FOR_KIND[described[0]] if described is not None else None
            if described is not None and (setting is None or getattr(found, setting)):
                yield event, described[1]


def notifications_send(*, now=None) -> int:
    """Email each store's owner about the events since the store's cursor; returns emails sent."""
    now = now or timezone.now()
    until = now - SETTLE
    recent = Event.objects.filter(pk__gte=_floor(until - timedelta(days=1)), pk__lt=_floor(until), type__in=TYPES)
    store_ids = set(recent.values_list("store_id", flat=True).distinct())
    sent = 0
    for store in Store.objects.filter(pk__in=store_ids).select_related("owner"):
        found, _ = NotificationSettings.objects.get_or_create(store=store, defaults={"events_seen_at": until - FIRST_LOOK_BACK})
        since = found.events_seen_at or until - FIRST_LOOK_BACK
        # Claim the window first: two sweeps running at once cannot both tell the same events.
        if not NotificationSettings.objects.filter(pk=store.pk, events_seen_at=found.events_seen_at).update(events_seen_at=until):
            continue
        window = Event.objects.filter(store=store, type__in=TYPES, pk__gte=_floor(since), pk__lt=_floor(until)).order_by("pk")
        told = 0
        for event, line in _told(window, found):
            if told == EMAILS_PER_RUN:
                # The rest are counted, not told, but for chargebacks: few, and each has a deadline.
                rest = window.filter(pk__gte=event.pk)
                for dispute in rest.filter(type__in=DISPUTE_TYPES).iterator():
                    _notify(store, _describe(dispute, {})[1])
                    told += 1
                if untold := rest.exclude(type__in=DISPUTE_TYPES).count():
                    _notify(store, f"Up to {untold:,} more sales, tips, members, refunds and pledges came in at once and "
                                   "were not emailed one by one; your dashboard lists them all.",
                            subject=f"up to {untold:,} more events")
                    told += 1
                break
            _notify(store, line)
            told += 1
        sent += told
    return sent


def digest_figures(*, store: Store, day) -> dict:
    orders = Order.objects.filter(store=store, livemode=True, created_at__date=day)
    figures = orders.aggregate(count=Count("pk"), gross=Sum("amount_total", filter=Q(currency=store.currency)),
                               refunded=Sum("amount_refunded", filter=Q(currency=store.currency)))
    figures["new_customers"] = Customer.objects.filter(store=store, created_at__date=day).count()
    return {k: v or 0 for k, v in figures.items()}


def digests_send(*, now=None) -> int:
    """Yesterday's orders, takings and new customers, once a day, to owners who turned it on."""
    now = now or timezone.now()
    day = (now - timedelta(days=1)).date()
    sent = 0
    for found in NotificationSettings.objects.filter(daily_digest=True).exclude(digest_sent_on=day).select_related("store__owner"):
        if not NotificationSettings.objects.filter(pk=found.pk).exclude(digest_sent_on=day).update(digest_sent_on=day):
            continue
        store = found.store
        figures = digest_figures(store=store, day=day)
        email_send(to=store.owner.email, subject=f"{store.name}: your day, {day:%b %-d}", template="audience/email/digest",
                   context={"store": store, "day": day, "figures": figures,
                            "gross": format_money(figures["gross"], store.currency, "en"),
                            "refunded": format_money(figures["refunded"], store.currency, "en"),
                            "dashboard_url": f"{settings.BASE_URL}/dashboard/{store.slug}/"})
        sent += 1
    return sent

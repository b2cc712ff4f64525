"""Billing rules of memberships: periods, renewals and dunning.

Periods. A subscription's periods are counted from its anchor (the first period's start):
period n runs from ``period_bound(anchor, interval, n)`` to ``period_bound(anchor, interval,
n + 1)``. Monthly and yearly bounds keep the anchor's day of the month and clamp it to the
month's length, so a member who joined on Jan 31 renews on Feb 28 (29 in a leap year), Mar 31,
Apr 30, May 31; one who joined on Feb 29 renews yearly on Feb 28, and on Feb 29 in leap years.
Weekly periods are 7 days. Times are UTC.

Renewals. ``renewals_run`` (the periodic Huey task ``renewals_task``) streams due subscriptions
``GROUP`` rows a query by primary key (keyset pagination: memory flat in their number), and renews
each. A renewal is idempotent per (subscription, period): the next period's ``SubscriptionPeriod``
row is unique on (subscription, number), and a worker first claims it — by inserting it, or for a
retry by a guarded UPDATE from ``failed`` to ``charging`` — and only the worker whose claim
succeeded charges.

The common case — an active member paying from the wallet, not cancelling nor pausing — is renewed
in groups: the plain wallet renewals of each batch read, per store and currency, in one
transaction of set-based statements (``renewals.renewals_group``, ``orders.spend_many``): one
INSERT … ON CONFLICT DO NOTHING RETURNING claims the group's periods (a second worker's claim
waits on the first's rows, then does nothing), one guarded UPDATE debits every wallet (a wallet
that cannot pay is left out, nothing changed for it), one UPDATE guarded on the ``updated_at``
each row was read with moves the subscriptions on (a member who cancelled, paused or changed
anything since the read is left out: that savepoint is rolled back and the rest debited again),
then the payments, orders, lines, transfers and events of the whole group, and the accounts'
totals each once. The members left out — an empty wallet, a change since the read, a period row
that exists — lose their claims in the same transaction and are decided after it commits, one by
one from a fresh read (``renewals.subscription_renew``): an empty wallet falls back to the saved
card or walks into dunning as below. A crash leaves all of a group or none of it; a group that
fails is rolled back and its members renewed one by one. The group's size bounds how long it
holds SQLite's write lock and the store balance's row, which a buyer's one-click spend waits for.
On PostgreSQL the task renews its batches on ``STALL_RENEWAL_WORKERS`` threads (2 by default), each
on its own connection, so one group's statements run in the server while the next group's rows are
built in Python; the rows groups share are locked in key order, and the claims keep each period once.

One by one, from the wallet the claim, the lean spend (``orders.spend``) and the subscription's
new period are one transaction. By card, the claim is committed first, then the saved card is
charged outside any transaction with the idempotency key ``<subscription>:<period>:<attempt>``
(``payments.saved_methods.payment_charge_saved``), so a worker that re-drives a claim left
``charging`` by a crash replays the same charge instead of making a second one. The paid order's
fulfilment (``services.membership_fulfil``) marks the period paid and moves the subscription on,
on every rail.

Payment source. A member paying from the wallet is charged there first; if the wallet cannot pay
and they allowed it (``card_fallback``), their saved card is charged instead. A member paying by
card is charged on the saved card. A capped membership (cap-to-subscribe) or a complimentary one
pays nothing and ends at its period's end unless the member chose a way to pay.

Dunning. A renewal that cannot be paid makes the subscription ``past_due`` (access kept) and is
retried 2, 7 and 14 days after the first failure (``DUNNING_DAYS``); each failure emails the
member a link to fix their payment. When the last retry fails the subscription ends and access
stops. Fixing the payment method during the grace period retries at once.

Other transitions at a period's end: a cancellation at period end ends the subscription; a
pause skips the period (nothing charged, status ``paused``, no access); a downgrade (a pending
price) takes effect and is what is charged.

Resuming. A pause not started yet is simply forgotten. A member who resumes during a paused
period has access again at once: the paused period ends at that moment, a new period starts then
and is charged in full (at the pending price if a change was chosen), and the anchor moves to that
moment, so later renewals fall on that day of the month. A member paused from Feb 10 who resumes
on Feb 20 pays on Feb 20 and next on Mar 20: they pay for exactly the time they can read, and
nothing for the paused days. If the payment fails nothing changes and the membership stays paused.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from .models import Interval

DUNNING_DAYS = (2, 7, 14)
GROUP = 100  # subscriptions read per query by the renewal task, and renewed per transaction (see the bench)


def period_bound(anchor: datetime, interval: str, n: int) -> datetime:
    """The start of period ``n`` counted from ``anchor`` (see the module's docstring)."""
    if interval == Interval.WEEK:
        return anchor + timedelta(days=7 * n)
    months = n if interval == Interval.MONTH else 12 * n
    if interval not in (Interval.MONTH, Interval.YEAR):
        raise ValueError(f"unknown interval {interval!r}")
    index = anchor.month - 1 + months
    year, month = anchor.year + index // 12, index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def retry_at(past_due_since: datetime, retries: int) -> datetime | None:
    """When the renewal is tried again after ``retries`` failed retries; None: no more tries."""
    if retries >= len(DUNNING_DAYS):
        return None
    return past_due_since + timedelta(days=DUNNING_DAYS[retries])


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)

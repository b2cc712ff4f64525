"""Collecting and releasing pledges: the money-moving steps the pledge service and the deadline's
settlement share.

Wallet pledges are settled a chunk at a time in one transaction of a few statements, whatever the
chunk's size: one UPDATE claims the chunk's pledges (``held`` → ``collected`` or ``voided``,
guarded on ``held`` and RETURNING what was claimed, so a pledge claimed by one run is never seen
by another); on success one SELECT reads (and on PostgreSQL locks) the wallets' and their fee
pools' totals for the pledges' fee shares; then the ledger's ``transfers_settle`` resolves their
pending transfers (guarded on ``pending``), inserts the chunk's transfers (escrow → store balance,
the platform's fee, each pledge's fee share) and moves every account's totals, three statements;
and one INSERT records the ``pledge.collected`` events. A crash rolls the whole chunk back; the
next run claims it again.

Card pledges are charged one at a time: the claim (``saved``/``failed`` → ``charging``, attempts
+ 1) is committed first, then the saved card is charged outside any transaction with the key
``<pledge>:charge:<attempt>``, so a run that re-drives a pledge left ``charging`` by a crash replays
the same charge instead of making a second one.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from stall.catalog.models import Product
from stall.checkout.models import Checkout, CheckoutLine, CheckoutStatus
from stall.core.sql import in_list
from stall.integrations.webhooks import ENDPOINTS_ENABLED_SQL, EventRow, events_record
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.services import Posting, account_id_for, transfers_settle
from stall.orders.fulfilment import fulfilment_handler
from stall.orders.models import Entitlement, Order, OrderLine
from stall.orders.services import ENTITLING_KINDS, customer_for_email
from stall.payments.errors import PaymentProcessorUnavailable
from stall.payments.models import PaymentStatus
from stall.payments.rails.wallet import held_fee_shares
from stall.payments.saved_methods import payment_charge_saved
from stall.payments.services import platform_fee_for

from .errors import PledgeStateInvalid
from .models import Campaign, Pledge, PledgeStatus
from .notices import pledge_charge_failed_notice
from .schemas import pledge_out, pledge_row_out

CHUNK = 1000  # wallet pledges settled per transaction
# After a failed card charge: the backer is emailed at once, then the card is tried again (and the
# backer emailed if it fails) on these days after the first failure; on DROP_DAY it is dropped.
RETRY_DAYS = (3, 6)
DROP_DAY = 7


def escrow_id(*, campaign_id: str, currency: str, livemode: bool = True) -> str:
    """The campaign's escrow account (a ``store_pending`` account owned by the campaign)."""
    return account_id_for(
        kind=AccountKind.STORE_PENDING, owner=ledger_owner(campaign_id, livemode=livemode), currency=currency
    )


def endpoints_enabled(store_id: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ENDPOINTS_ENABLED_SQL, [store_id])
        return bool(cursor.fetchone()[0])


def wallet_settle(
    *, campaign: Campaign, collect: bool, pledge_ids: list[str] | None = None, limit: int = CHUNK,
    endpoints: bool | None = None,
) -> int:
    """Collect (``collect``) or void held wallet pledges of ``campaign``: the given ones, or the
    next ``limit`` by id. Returns how many this call settled (0: none left).

    A collected pledge is a wallet spend like any other: the store pays its share of the wallet's
    top-up fee (to the wallet's fee pool, one ``processor_fee`` transfer per pledge, referencing
    it) and the platform's fee (one ``platform_fee`` transfer per chunk, the sum of each pledge's
    fee rounded on its own, as each sale's is)."""
    return _settle_chunk(campaign=campaign, collect=collect, pledge_ids=pledge_ids, limit=limit,
                         endpoints=endpoints)[1]


def wallet_settle_chunks(*, campaign: Campaign, collect: bool, limit: int = CHUNK, endpoints: bool | None = None):
    """Settle every held wallet pledge of ``campaign``, ``limit`` a transaction, yielding how many
    each chunk settled. Each chunk's ids are read after the last one's (keyset): however the
    database walks the campaign's pledges, it never reads again the ones already settled, which
    a run of 100,000 would otherwise re-read at every chunk."""
    after = ""
    while True:
        last, settled = _settle_chunk(campaign=campaign, collect=collect, pledge_ids=None, limit=limit,
                                      endpoints=endpoints, after=after)
        if last is None:
            return
        after = last
        yield settled


def _settle_chunk(
    *, campaign: Campaign, collect: bool, pledge_ids: list[str] | None, limit: int, endpoints: bool | None,
    after: str = "",
) -> tuple[str | None, int]:
    """One chunk: (the last id read, None when none was; how many were settled)."""
    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    status = PledgeStatus.COLLECTED if collect else PledgeStatus.VOIDED
    with transaction.atomic():
        with connection.cursor() as cursor:
            if pledge_ids is None:
                # The ids first, then the UPDATE by them: an UPDATE … WHERE id IN (SELECT … LIMIT)
                # makes SQLite walk every held pledge of the Stall by the status index, per chunk.
                cursor.execute(
                    "SELECT id FROM campaigns_pledge WHERE campaign_id = %s AND status = %s AND id > %s "
                    "ORDER BY id LIMIT %s",
                    [campaign.pk, PledgeStatus.HELD, after, limit],
                )
                pledge_ids = [row[0] for row in cursor.fetchall()]
            if not pledge_ids:
                return None, 0
            last = max(pledge_ids)
            which, which_params = in_list("id", pledge_ids)
            cursor.execute(
                f"UPDATE campaigns_pledge SET status = %s, collected_at = %s, updated_at = %s WHERE {which} "
                "AND status = %s RETURNING id, hold_transfer_id, wallet_account_id, amount, livemode, tier_id, email",
                [status, stamp if collect else None, stamp, *which_params, PledgeStatus.HELD],
            )
            rows = sorted(cursor.fetchall())  # by id: the order the chunk's fee shares are taken in
        if not rows:
            return last, 0
        postings = _collect_postings(campaign=campaign, rows=rows) if collect else []
        transfers_settle(pending_ids=[r[1] for r in rows], post=collect, postings=postings)
        if not collect:
            return last, len(rows)
        _rewards_grant(campaign=campaign, rows=rows)
        events = [
            EventRow("pledge.collected", pledge_row_out(
                id=r[0], campaign_id=campaign.pk, tier_id=r[5], email=r[6], amount=r[3], currency=campaign.currency,
                method="wallet", status=PledgeStatus.COLLECTED,
            ))
            for r in rows
        ]
        if endpoints is None:
            endpoints = endpoints_enabled(campaign.store_id)
        events_record(store_id=campaign.store_id, events=events, endpoints=endpoints)
    return last, len(rows)


def _collect_postings(*, campaign: Campaign, rows: list[tuple]) -> list[Posting]:
    """The transfers that collect a chunk of claimed wallet pledges (``rows``, by id), once their
    holds are posted into the escrow: per kind of money (real, test), the chunk's total from the
    escrow to the store's balance and the platform's fee; per pledge, its fee share."""
    currency = campaign.currency
    shares = held_fee_shares(holds=[(r[2], r[3]) for r in rows])
    first = rows[0][0]
    totals: dict[bool, int] = {}
    platform: dict[bool, int] = {}
    for r in rows:
        lm = bool(r[4])
        totals[lm] = totals.get(lm, 0) + r[3]
        platform[lm] = platform.get(lm, 0) + platform_fee_for(r[3])
    balances = {
        lm: account_id_for(kind=AccountKind.STORE_BALANCE, owner=ledger_owner(campaign.store_id, livemode=lm),
                           currency=currency)
        for lm in totals
    }
    postings = []
    for lm, total in totals.items():
        escrow = escrow_id(campaign_id=campaign.pk, currency=currency, livemode=lm)
        postings.append(Posting(f"{campaign.pk}:collect:{first}:{int(lm)}", escrow, balances[lm], total, currency,
                                "pledge_collected", campaign.pk))
        if platform[lm]:
            fees = account_id_for(kind=AccountKind.PLATFORM_FEES, owner=ledger_owner("platform", livemode=lm),
                                  currency=currency)
            postings.append(Posting(f"{campaign.pk}:platform_fee:{first}:{int(lm)}", balances[lm], fees,
                                    platform[lm], currency, "platform_fee", campaign.pk))
    for r, share in zip(rows, shares, strict=True):
        if share is not None and share.fee:
            postings.append(Posting(f"{r[0]}:processor_fee", balances[bool(r[4])], share.pool_id, share.fee,
                                    currency, "processor_fee", r[0]))
    return postings


def _rewards_grant(*, campaign: Campaign, rows: list[tuple]) -> None:
    """Grant the products of the rewards of collected wallet pledges, through orders: an order of
    the product at no charge (the money came through the pledge) with its entitlement, or the
    product kind's own fulfilment (a membership period)."""
    tier_ids = {r[5] for r in rows if r[5]}
    if not tier_ids:
        return
    products = {
        t.pk: t.product
        for t in campaign.tiers.filter(pk__in=tier_ids, product__isnull=False).select_related("product")
    }
    for row in rows:
        product = products.get(row[5])
        if product is not None:
            order = reward_grant(store_id=campaign.store_id, email=row[6], product=product, livemode=bool(row[4]),
                                 currency=campaign.currency)
            Pledge.objects.filter(pk=row[0]).update(order=order)


def reward_grant(*, store_id: str, email: str, product: Product, livemode: bool, currency: str) -> Order:
    customer = customer_for_email(store_id=store_id, email=email)
    order = Order.objects.create(
        store_id=store_id, customer=customer, email=email, currency=currency, amount_total=0, livemode=livemode,
    )
    line = OrderLine.objects.create(order=order, product=product, name=product.name, unit_amount=0)
    if product.kind in ENTITLING_KINDS:
        Entitlement.objects.create(store_id=store_id, order=order, product=product, email=email,
                                   download_limit=product.download_limit)
    else:
        handler = fulfilment_handler(product.kind)
        if handler is not None:
            events = handler(order=order, lines=[line], context=None) or []
            events_record(store_id=store_id, events=events)
    return order


# --- Cards --------------------------------------------------------------------------------------


def card_claim(*, pledge: Pledge, from_statuses: tuple[str, ...]) -> bool:
    """Claim a card pledge for a charge attempt (committed before the card is charged)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Pledge.objects.filter(pk=pledge.pk, status__in=from_statuses).update(
            status=PledgeStatus.CHARGING, attempts=pledge.attempts + 1, updated_at=now
        )
    if claimed:
        pledge.status, pledge.attempts = PledgeStatus.CHARGING, pledge.attempts + 1
    return bool(claimed)


def card_charge(*, pledge: Pledge, notify: bool = True) -> str:
    """Charge a claimed (``charging``) card pledge and record the outcome. Returns the pledge's
    status after it: ``collected``, ``failed`` (in recovery), ``dropped``, or ``charging`` when the
    rail could not be reached (the next run replays the same charge)."""
    campaign = pledge.campaign
    tier = pledge.tier
    try:
        payment = payment_charge_saved(
            store=campaign.store, saved=pledge.saved, amount=pledge.amount, currency=pledge.currency,
            description=f"Pledge to {campaign.title}"[:255], idempotency_key=f"{pledge.pk}:charge:{pledge.attempts}",
            product=tier.product if tier is not None else None,
        )
    except PaymentProcessorUnavailable:
        return PledgeStatus.CHARGING
    now = timezone.now()
    if payment.status == PaymentStatus.SUCCEEDED:
        order = Order.objects.filter(payment=payment).first()
        with transaction.atomic():
            if Pledge.objects.filter(pk=pledge.pk, status=PledgeStatus.CHARGING).update(
                status=PledgeStatus.COLLECTED, collected_at=now, order=order, next_attempt_at=None, updated_at=now,
            ):
                pledge.status, pledge.order, pledge.collected_at = PledgeStatus.COLLECTED, order, now
                events_record(store_id=campaign.store_id, events=[EventRow("pledge.collected", pledge_out(pledge))])
        return PledgeStatus.COLLECTED
    if payment.status != PaymentStatus.FAILED:
        return PledgeStatus.CHARGING  # still processing: the rail will tell, the next run replays
    failed_at = pledge.failed_at or now
    reminders = pledge.reminders_sent + 1
    next_day = RETRY_DAYS[reminders - 1] if reminders <= len(RETRY_DAYS) else DROP_DAY
    with transaction.atomic():
        changed = Pledge.objects.filter(pk=pledge.pk, status=PledgeStatus.CHARGING).update(
            status=PledgeStatus.FAILED, failed_at=failed_at, reminders_sent=reminders,
            next_attempt_at=failed_at + timedelta(days=next_day),
            failure_message=(payment.failure_message or payment.failure_code or "")[:255], updated_at=now,
        )
        if changed:
            pledge.status, pledge.failed_at, pledge.reminders_sent = PledgeStatus.FAILED, failed_at, reminders
            events_record(store_id=campaign.store_id,
                          events=[EventRow("pledge.collection_failed", pledge_out(pledge))])
            if notify:
                transaction.on_commit(lambda: pledge_charge_failed_notice(pledge.pk))
    return PledgeStatus.FAILED


# --- Paying a failed pledge another way -----------------------------------------------------------


def recovery_checkout_open(*, pledge: Pledge) -> Checkout:
    """The checkout a pledge whose card failed is paid with on the hosted payment page (the store's
    rails: its card form, Lightning, the buyer's wallet and tab), made for the pledge's amount with
    a line of the reward's product if it has one, as the deadline's card charge is. The one still
    open is reused; while it is, ``recovery_run`` neither retries the card nor drops the pledge,
    so the buyer is not charged twice. Raises PledgeStateInvalid unless the pledge is in recovery."""
    now = timezone.now()
    with transaction.atomic():
        locked = Pledge.objects.select_for_update(of=("self",)).select_related(
            "recovery_checkout", "tier__product").get(pk=pledge.pk)
        if locked.status != PledgeStatus.FAILED:
            raise PledgeStateInvalid(gettext_noop("This pledge is no longer waiting for payment."))
        checkout = locked.recovery_checkout
        if checkout is not None and checkout.status == CheckoutStatus.OPEN and checkout.expires_at > now:
            return checkout
        checkout = Checkout.objects.create(
            store_id=pledge.campaign.store_id, email=locked.email, buyer_id=locked.buyer_id, currency=locked.currency,
            amount_subtotal=locked.amount, amount_total=locked.amount, language=locked.language,
            expires_at=now + timedelta(seconds=settings.STALL_CHECKOUT_TTL_SECONDS),
        )
        product = locked.tier.product if locked.tier is not None else None
        if product is not None:
            CheckoutLine.objects.create(checkout=checkout, product=product, name=product.name, unit_amount=locked.amount)
        Pledge.objects.filter(pk=locked.pk).update(recovery_checkout=checkout, updated_at=now)
    return checkout


# Read in the spend's first SELECT (``orders.fulfilment``): has the store a failed pledge waiting
# on a recovery checkout? Only then does a checkout's paid order look for its pledge, so the lean
# spend pays no statement for it. The pledges with a recovery checkout are few (a partial index).
# A dropped pledge still waits: a payment started on its checkout before the drop (a card at its
# bank's 3-D Secure check, a Lightning invoice) may land after it.
_WAITING = (PledgeStatus.FAILED, PledgeStatus.DROPPED)
_WAITING_IN = "(" + ", ".join(f"'{status.value}'" for status in _WAITING) + ")"
RECOVERY_WAITING_SQL = (
    "EXISTS (SELECT 1 FROM campaigns_pledge rp JOIN campaigns_campaign rc ON rc.id = rp.campaign_id "
    f"WHERE rp.recovery_checkout_id IS NOT NULL AND rp.status IN {_WAITING_IN} AND rc.store_id = %s)"
)


_COLLECT_SQL = (
    "UPDATE campaigns_pledge SET status = %s, order_id = %s, collected_at = %s, next_attempt_at = NULL, updated_at = %s "
    f"WHERE recovery_checkout_id = %s AND status IN {_WAITING_IN}"
)


def recovery_paid(*, order, paid, context, read) -> list[EventRow]:
    """An order-paid observer (registered in apps.py): the order of a failed (or since dropped)
    pledge's recovery checkout collects the pledge, in the order's transaction, whichever rail paid it. Orders of no
    checkout (an unlock, a tip), and the spends of a store with no pledge waiting to be paid
    another way (``read``, from ``RECOVERY_WAITING_SQL``), cost nothing; another checkout's, one
    UPDATE by a partial index."""
    if order.checkout_id is None or (read is not None and not read):
        return []
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    # A dropped one too: the money came for it, started before the drop and landed after. Written
    # out: every card checkout's order asks (the card path has no first SELECT to read it in), and
    # the ORM's building of this UPDATE cost more than running it.
    with connection.cursor() as cursor:
        cursor.execute(_COLLECT_SQL, [PledgeStatus.COLLECTED.value, order.pk, stamp, stamp, order.checkout_id])
        collected = cursor.rowcount
    if not collected:
        return []
    pledge = Pledge.objects.get(recovery_checkout_id=order.checkout_id)
    return [EventRow("pledge.collected", pledge_out(pledge))]

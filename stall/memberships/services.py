"""Writes for members: joining (wallet, card, trial, free), what a paid membership order does,
cap-to-subscribe, and the member's and creator's changes (cancel, pause, resume, change tier,
payment method, complimentary memberships). Renewals and dunning are in ``renewals``; the rules
are written down in ``billing``.

Money moves only through the existing paths: the wallet through the lean spend
(``orders.spend``) with a line of kind ``membership``; cards through a checkout of the tier
price's product (the hosted payment page) or a charge of the member's saved card
(``payments.saved_methods.payment_charge_saved``). Every path ends in a paid order whose
fulfilment (``membership_fulfil``, registered for the ``membership`` kind) starts, renews or
upgrades the subscription, in the order's transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop, ngettext

from stall.accounts.models import Buyer
from stall.accounts.services import buyer_for_email
from stall.catalog.models import ProductKind
from stall.checkout.models import Checkout
from stall.checkout.services import CheckoutItem, checkout_create, email_normalize
from stall.core.errors import InvalidRequest, StallError
from stall.core.ids import new_id
from stall.core.languages import language_to_record
from stall.core.money import prorate
from stall.integrations.webhooks import EventRow, events_record
from stall.orders.errors import PriceLimitPassed
from stall.orders.models import Order
from stall.orders.refunds import refund_create
from stall.orders.services import customer_for_email
from stall.orders.spend import SpendLine, order_spend, spend_read
from stall.orders.tiers import MembershipChange, membership_changed
from stall.payments.errors import BuyerRequired, PaymentDeclined, PaymentProcessorUnavailable
from stall.payments.models import PaymentStatus, SavedPaymentMethod, Wallet
from stall.payments.rails import rail_get
from stall.payments.saved_methods import (
    CardSetup,
    payment_charge_saved,
    payment_method_save,
    payment_method_setup_start,
)
from stall.payments.selectors import saved_method_for_payment

from . import billing
from .cap_refunds import cap_excess_refund_task
from .errors import (
    AlreadyMember,
    MemberLimitReached,
    SubscriptionInvalid,
    SubscriptionStateInvalid,
    TierArchived,
    TierNotFound,
)
from .models import (
    LIVE_STATUSES,
    CapExcess,
    CapTotal,
    Interval,
    Origin,
    PaidWith,
    PaySource,
    PendingJoin,
    PeriodStatus,
    Subscription,
    SubscriptionPeriod,
    SubscriptionStatus,
    Tier,
    TierPrice,
    TierStatus,
    feed_token_new,
)
from .schemas import subscription_out

logger = logging.getLogger(__name__)

JOIN_METHODS = ("wallet", "card")
MAX_PAUSE_PERIODS = 3


# --- Helpers -----------------------------------------------------------------------------------


def subscription_events_record(sub: Subscription, *types: str) -> None:
    """Record events for ``sub`` in the caller's transaction, and tell the domains that follow
    memberships (a metering plan carried by the tier) what it is now."""
    data = subscription_out(sub)
    events_record(store_id=sub.store_id, events=[EventRow(t, data) for t in types])
    membership_changed(change=membership_change(sub))


def membership_change(sub: Subscription) -> MembershipChange:
    """A membership as the domains that follow memberships see it (``orders.tiers``). A paused
    membership is not live: its member neither reads nor pays, and a plan the tier carries stops
    billing them until the membership goes on."""
    return MembershipChange(
        membership_id=sub.pk, store_id=sub.store_id, tier_id=sub.tier_id, customer_id=sub.customer_id,
        live=sub.status not in (SubscriptionStatus.ENDED, SubscriptionStatus.PAUSED), pay_with=sub.pay_with,
        saved_method_id=sub.saved_method_id,
    )


def tier_members(*, tier_id: str) -> list[MembershipChange]:
    """The tier's memberships that are not over, as ``membership_change`` (``orders.tiers.TierDirectory``)."""
    subs = Subscription.objects.filter(tier_id=tier_id, status__in=LIVE_STATUSES).order_by("pk")
    return [membership_change(sub) for sub in subs.iterator(chunk_size=500)]


def membership_line(price: TierPrice, amount: int | None = None) -> SpendLine:
    product = price.product
    return SpendLine(
        product_id=product.pk, name=product.name, unit_amount=price.amount if amount is None else amount,
        kind=ProductKind.MEMBERSHIP, download_limit=product.download_limit,
    )


# Refusals of an interval a tier does not sell, kept English where raised (the API's) and
# translated where a page shows them.
NO_PRICE_MESSAGES = {
    Interval.WEEK: gettext_noop("This tier has no weekly price."),
    Interval.MONTH: gettext_noop("This tier has no monthly price."),
    Interval.YEAR: gettext_noop("This tier has no yearly price."),
}


def tier_price_for(*, tier: Tier, interval: str | None = None) -> TierPrice | None:
    """The tier's price for ``interval`` (default: monthly, else its only one); None for a free tier."""
    prices = {p.interval: p for p in tier.prices.select_related("product")}
    if not prices:
        return None
    if interval is None:
        return prices.get(Interval.MONTH) or next(iter(prices.values()))
    if interval not in Interval.values:
        raise SubscriptionInvalid(
            gettext("Unknown interval “%(interval)s”: choose %(intervals)s.") % {"interval": interval, "intervals": ", ".join(Interval.values)},
            param="interval", code="invalid_interval",
        )
    price = prices.get(interval)
    if price is None:
        raise SubscriptionInvalid(NO_PRICE_MESSAGES[interval], param="interval", code="invalid_interval")
    return price


def _joinable(*, tier: Tier, email: str) -> None:
    """Refuse a join to an archived or full tier, or by a reader who is a member already. Call
    with the tier row locked, so that two joins for the last place cannot both get it."""
    if tier.status != TierStatus.ACTIVE:
        raise TierArchived()
    if Subscription.objects.filter(store_id=tier.store_id, email=email, status__in=LIVE_STATUSES).exists():
        raise AlreadyMember()
    if tier.member_limit is not None:
        members = Subscription.objects.filter(tier=tier, status__in=LIVE_STATUSES).count()
        if members >= tier.member_limit:
            raise MemberLimitReached()


def _tier_locked(tier: Tier) -> Tier:
    return Tier.objects.select_for_update().select_related("store").get(pk=tier.pk)


@dataclass(frozen=True)
class Start:
    """How a new subscription begins: its first period and how later ones are paid."""

    tier: Tier
    price: TierPrice | None
    email: str
    buyer: Buyer | None
    pay_with: str
    saved: SavedPaymentMethod | None = None
    card_fallback: bool = False
    origin: str = Origin.JOIN
    ends_at: datetime | None = None  # a complimentary membership's end
    trial: bool = False
    # The reader's language for later emails; None: the active one (the page's, where they joined).
    language: str | None = None


def _start(plan: Start, *, now: datetime, order: Order | None = None, paid_with: str = PaidWith.NONE,
           amount: int = 0, period_start: datetime | None = None, anchor: datetime | None = None) -> Subscription | None:
    """Make the subscription and its first period (paid by ``order``, or free). Call inside a
    transaction. None when the reader is already a member (a second card join paid anyway: the
    order stands and the creator may refund it)."""
    tier, price = plan.tier, plan.price
    start = period_start or now
    anchor_at, offset, status = anchor or start, 0, SubscriptionStatus.ACTIVE
    if plan.ends_at is not None:
        end = plan.ends_at
    elif price is None:
        end = None
    elif plan.trial:
        end = now + timedelta(days=tier.trial_days)
        anchor_at, offset, status = end, 1, SubscriptionStatus.TRIALING
    else:
        end = billing.period_bound(anchor_at, price.interval, 1)
    customer = customer_for_email(store_id=tier.store_id, email=plan.email)
    sub = Subscription(
        store_id=tier.store_id, tier=tier, price=price, customer=customer, email=plan.email, buyer=plan.buyer,
        status=status, origin=plan.origin, pay_with=plan.pay_with, saved_method=plan.saved,
        card_fallback=plan.card_fallback, anchor_at=anchor_at, anchor_offset=offset, period_number=0,
        current_period_start=start, current_period_end=end, trial_end=end if plan.trial else None,
        feed_token=feed_token_new(), language=language_to_record() if plan.language is None else plan.language,
    )
    try:
        with transaction.atomic():
            sub.save(force_insert=True)
    except IntegrityError:
        logger.warning("%s paid to join %s but is already a member", plan.email, tier.pk)
        return None
    SubscriptionPeriod.objects.create(
        subscription=sub, number=0, start=start, end=end, price=price, amount=amount,
        currency=tier.store.currency, status=PeriodStatus.PAID if order is not None else PeriodStatus.FREE,
        paid_with=paid_with, order=order, payment_id=order.payment_id if order is not None else None, attempts=1,
    )
    subscription_events_record(sub, "subscription.created")
    return sub


# --- Joining -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    """A membership begun now (``subscription``), or a ``checkout`` to pay on the hosted page."""

    subscription: Subscription | None = None
    checkout: Checkout | None = None


def subscription_join(
    *, tier: Tier, method: str = "wallet", interval: str | None = None, buyer: Buyer | None = None,
    email: str = "", payment_method: str = "", card_fallback: bool = False,
) -> Join:
    """Join ``tier`` for the reader.

    ``method`` is how renewals are paid: ``wallet`` (the signed-in ``buyer``'s, one click, no card
    fee; with ``card_fallback`` and a ``payment_method`` the card is saved for renewals the wallet
    cannot pay) or ``card``. By card with a ``payment_method`` (a sandbox card, a Stripe ``pm_``)
    the card is saved and charged now; without one a checkout is returned for the hosted payment
    page, where the card paid with is saved. A tier with a trial charges nothing now: the first
    charge is at the trial's end. A free tier charges nothing ever. Refused, with nothing charged:
    an archived tier (TierArchived), a full one (MemberLimitReached), a member already
    (AlreadyMember), an interval the tier does not offer, an empty wallet (WalletEmpty).
    """
    if method not in JOIN_METHODS:
        raise InvalidRequest(
            gettext("Choose how to pay: %(methods)s.") % {"methods": ", ".join(JOIN_METHODS)}, param="method", code="invalid_payment_method"
        )
    email = buyer.email.lower() if buyer is not None else email_normalize(email).lower()
    tier = Tier.objects.select_related("store").get(pk=tier.pk)  # as it is now, not as the caller read it
    price = tier_price_for(tier=tier, interval=interval)
    if method == "wallet" and buyer is None:
        raise BuyerRequired()
    now = timezone.now()
    if price is None or tier.trial_days:
        saved = _card_saved(email=email, payment_method=payment_method, store=tier.store) if payment_method else None
        if price is not None and method == "card" and saved is None:
            raise InvalidRequest(gettext_noop("Give the card to charge when the trial ends."), param="payment_method", code="card_required")
        with transaction.atomic():
            locked = _tier_locked(tier)
            _joinable(tier=locked, email=email)
            pay_with = PaySource.NONE if price is None else method
            plan = Start(tier=locked, price=price, email=email, buyer=buyer, pay_with=pay_with, saved=saved,
                         card_fallback=bool(card_fallback and saved), trial=price is not None)
            return Join(subscription=_start(plan, now=now))
    if method == "wallet":
        saved = _card_saved(email=email, payment_method=payment_method, store=tier.store) if card_fallback and payment_method else None
        plan = Start(tier=tier, price=price, email=email, buyer=buyer, pay_with=PaySource.WALLET, saved=saved,
                     card_fallback=saved is not None)
        with transaction.atomic():
            plan = Start(**{**plan.__dict__, "tier": _tier_locked(tier)})
            _joinable(tier=plan.tier, email=email)
            context = {"membership": ("join", plan)}
            read = spend_read(buyer=buyer, store_id=tier.store_id, currency=price.currency)
            order_spend(store_id=tier.store_id, buyer=buyer, method="wallet", currency=price.currency,
                        lines=[membership_line(price)], read=read, context=context)
        return Join(subscription=context["made"])
    with transaction.atomic():
        _joinable(tier=_tier_locked(tier), email=email)
    if not payment_method:
        with transaction.atomic():
            checkout = checkout_create(store=tier.store, email=email, items=[CheckoutItem(product_id=price.product_id)], save_card=True)
            PendingJoin.objects.create(checkout=checkout, price=price, email=email, buyer=buyer)
        return Join(checkout=checkout)
    saved = _card_saved(email=email, payment_method=payment_method, store=tier.store)

    def pending(payment) -> None:
        PendingJoin.objects.create(checkout_id=payment.checkout_id, price=price, email=email, buyer=buyer, saved_method=saved)

    payment = payment_charge_saved(
        store=tier.store, saved=saved, amount=price.amount, currency=price.currency, description=f"Join {tier.name}",
        idempotency_key=new_id("join"), product=price.product, before_start=pending,
    )
    _payment_check(payment)
    return Join(subscription=Subscription.objects.filter(store_id=tier.store_id, email=email, status__in=LIVE_STATUSES).first())


def _card_saved(*, email: str, payment_method: str, store) -> SavedPaymentMethod:
    """Keep the reader's card for renewals (a card only: the wallet is not a card)."""
    if payment_method in ("wallet", "tab"):
        raise InvalidRequest(gettext_noop("Give a card for renewals."), param="payment_method", code="card_required")
    rail = "sandbox" if payment_method.startswith("sandbox_") else "stripe"
    return payment_method_save(email=email, rail=rail, payment_method=payment_method, store=store)


def _payment_check(payment) -> None:
    if payment.status == PaymentStatus.FAILED:
        raise PaymentDeclined(payment.failure_message or None, code=payment.failure_code or "payment_failed")


# --- What a paid membership order does -----------------------------------------------------------


def membership_fulfil(*, order: Order, lines, context: dict | None = None) -> list[EventRow]:
    """Fulfilment of a paid order's membership lines (registered with orders for the
    ``membership`` kind), on every rail. ``context["membership"]`` says what the order pays for
    when memberships made it (a wallet join, renewal or upgrade: paid from the wallet); a card
    order is matched to the renewal it pays (by its payment), or to the join or upgrade started
    with its checkout, or else is a plain checkout of the tier's product (a payment link): the
    buyer joins that tier. A renewal's events are returned, to be recorded with the order's."""
    what = (context or {}).get("membership")
    now = timezone.now()
    paid_with = PaidWith.WALLET  # memberships' own orders are lean spends from the wallet
    if what is None:
        what = _card_order_plan(order)
        if what is None:
            return []
        paid_with = _paid_with(order)
    kind, plan = what
    if kind == "join":
        sub = _start(plan, now=now, order=order, paid_with=paid_with, amount=order.amount_total)
        if context is not None:
            context["made"] = sub
    elif kind == "renewal":
        return renewal_paid(period=plan, order=order, now=now, paid_with=paid_with, sub=context and context.get("subscription"))
    elif kind == "upgrade":
        sub, price = plan
        _upgrade_apply(sub=sub, price=price)
    return []  # the subscription's own events are recorded by the steps above


def _paid_with(order: Order) -> str:
    return PaidWith.WALLET if order.payment is not None and order.payment.rail in ("wallet", "tab") else PaidWith.CARD


def _card_order_plan(order: Order):
    period = SubscriptionPeriod.objects.select_related("subscription", "price").filter(payment_id=order.payment_id).first()
    if period is not None:
        return "renewal", period
    pending = PendingJoin.objects.select_related("price__tier__store", "subscription").filter(checkout_id=order.checkout_id).first()
    if pending is not None and pending.subscription_id is not None:
        return "upgrade", (pending.subscription, pending.price)
    line = order.lines.first()
    if pending is None:
        price = TierPrice.objects.select_related("tier__store", "product").filter(product_id=line.product_id).first()
        if price is None:
            return None
        email, buyer, saved = order.email.lower(), buyer_for_email(email=order.email), None
    else:
        price, email, buyer, saved = pending.price, pending.email, pending.buyer, pending.saved_method
    if saved is None and order.payment is not None and order.payment.rail == "sandbox":
        # The card paid with on the hosted page is kept for renewals.
        saved = payment_method_save(email=email, rail="sandbox", payment_method=order.payment.payment_method, store=price.tier.store)
    elif saved is None:
        # A Stripe card: the join's checkout asked for it to be kept (save_card), and payments kept
        # it on a Customer before recording the payment's success.
        saved = saved_method_for_payment(order.payment)
    if order.payment is not None and order.payment.rail in ("wallet", "tab") and order.payment.buyer_id:
        # Paid from the buyer's wallet (or tab) on the hosted pay page: renewals come from the
        # wallet, as a one-click wallet join's do. The member is the wallet's owner, who signed in
        # to pay: a join begun signed out (only an email, no buyer) would otherwise have no wallet
        # to renew from and lapse into past_due.
        payer = order.payment.buyer
        pay_with, buyer, email = PaySource.WALLET, payer, payer.email.lower()
    else:
        pay_with = PaySource.CARD if saved is not None else PaySource.NONE
    # Paid on the hosted page, maybe later and by the worker (a webhook): the language is the one
    # the reader was shown when the checkout was made.
    language = order.checkout.language if order.checkout_id else None
    return "join", Start(tier=price.tier, price=price, email=email, buyer=buyer, pay_with=pay_with, saved=saved,
                         language=language)


class RenewalStale(Exception):
    """The subscription changed since the renewal task read it: the renewal is rolled back and
    made again from a fresh read (``renewals``)."""


def renewal_paid(*, period: SubscriptionPeriod, order: Order, now: datetime, paid_with: str,
                 sub: Subscription | None = None) -> list[EventRow]:
    """A renewal's order is paid: the period is, and the subscription moves into it. Returns the
    subscription.renewed event.

    ``sub`` is the subscription as the renewal task read it (the streamed wallet renewal): it is
    moved on by one UPDATE guarded on its ``updated_at``, and RenewalStale is raised if it changed
    since (a cancellation, a pause, a new card); without it the row is read again, locked."""
    if sub is None:
        sub = Subscription.objects.select_for_update(of=("self",)).select_related("price").get(pk=period.subscription_id)
    price = period.price
    SubscriptionPeriod.objects.filter(pk=period.pk).update(
        status=PeriodStatus.PAID, order=order, payment_id=order.payment_id, paid_with=paid_with,
        amount=order.amount_total, failure_message="", updated_at=now,
    )
    restarted = sub.price is None or price.interval != sub.price.interval or period.start != sub.current_period_end
    if restarted:
        sub.anchor_at, sub.anchor_offset = period.start, period.number
    was_past_due = sub.status == SubscriptionStatus.PAST_DUE
    was_paused = sub.status == SubscriptionStatus.PAUSED
    tier_was = sub.tier_id
    read_at = sub.updated_at
    sub.price, sub.tier_id, sub.pending_price = price, price.tier_id, None
    sub.period_number, sub.current_period_start, sub.current_period_end = period.number, period.start, period.end
    sub.status = SubscriptionStatus.ACTIVE
    sub.past_due_since, sub.retries, sub.next_retry_at = None, 0, None
    sub.updated_at = now
    moved = Subscription.objects.filter(pk=sub.pk, updated_at=read_at).update(
        price=price, tier_id=price.tier_id, pending_price=None, period_number=period.number,
        current_period_start=period.start, current_period_end=period.end, anchor_at=sub.anchor_at,
        anchor_offset=sub.anchor_offset, status=SubscriptionStatus.ACTIVE, past_due_since=None, retries=0,
        next_retry_at=None, updated_at=now,
    )
    if not moved:
        raise RenewalStale(sub.pk)
    if sub.tier_id != tier_was or was_paused:  # a downgrade took effect, or a pause ended: a plan follows
        membership_changed(change=membership_change(sub))
    if was_past_due:
        logger.info("subscription %s recovered from past_due", sub.pk)
    return [EventRow("subscription.renewed", subscription_out(sub))]


# --- Cap-to-subscribe ----------------------------------------------------------------------------

# Read with the lean spend's first SELECT (orders.fulfilment.OrderPaidObserver): whether the
# store has a capped tier at all. A store without one pays no statement for the observer.
CAPPED_TIER_SQL = (
    "EXISTS (SELECT 1 FROM memberships_tier ct WHERE ct.store_id = %s AND ct.cap_to_subscribe AND ct.status = 'active')"
)


def cap_observe(*, order: Order, paid, context: dict | None, read) -> list[EventRow]:
    """After any paid order (an order-paid observer): unlocks of posts gated to a capped tier add
    to the reader's total for the calendar month; when it reaches the tier's monthly price, the
    reader becomes a member until the month's end, paid by what they already spent.

    No reader pays more than the cap in a month: an unlock of a post gated to a capped tier is
    charged at most what is left under the cap (``cap_limit``, asked by content through
    ``orders.pricing``), so the unlock that reaches the cap is charged only the rest and its
    order's line shows that amount. 40¢ posts under a $1 cap cost 40¢, 40¢, then 20¢, and the
    reader is a member. Once a member, the tier's gated posts cost nothing more (``post_unlock``
    answers already-unlocked, nothing charged). A reader who reaches the cap but cannot be made
    its member — a member of another tier of the store, or one whose capped membership the creator
    ended this month — is charged nothing more for its posts either, and reads them until the
    month's end (``cap_limit`` is 0 or less for them, ``selectors.access_granted`` lets them read).

    The price is read before the money moves, so it can be stale: a checkout priced before the
    cap was reached by other unlocks, or two payments at once. This is the backstop, where the
    month's total is added under its row's lock (every payment that counts passes here, inside
    its own transaction): an order that would take the total past the cap is

    - refused when paid from the wallet or the tab (``PriceLimitPassed``): its transaction rolls
      back with nothing moved, and a checkout is lowered to what is left and paid again
      (``orders.checkout_pay.checkout_confirm``), so the reader gets the post they clicked for;
    - counted only up to the cap when a card paid it (the money is taken: a Stripe page confirms
      in the browser, a 3-D Secure check or a Lightning invoice is paid later), and the rest is
      refunded after the commit (``cap_refunds``). A card checkout is also asked the cap before
      it is charged (``orders.pricing.checkout_prices_check``), so this is the rare race."""
    if read is not None and not read:
        return []
    posts = [line for line in paid if line.kind == ProductKind.POST]
    if not posts:
        return []
    month = billing.month_start(timezone.now())
    email = order.email.lower()
    tiers = list(
        Tier.objects.filter(store_id=order.store_id, cap_to_subscribe=True, status=TierStatus.ACTIVE,
                            gates__product_id__in=[line.product_id for line in posts])
        .distinct().select_related("store").order_by("pk")
    )
    counted = []  # (tier, what this order adds to it, its month's total now, its monthly price)
    for tier in tiers:
        gated = set(tier.gates.values_list("product_id", flat=True))
        amount = sum(line.amount for line in posts if line.product_id in gated)
        total = _cap_add(tier=tier, email=email, month=month.date(), amount=amount)
        price = tier.prices.select_related("product").filter(interval=Interval.MONTH).first()
        counted.append((tier, amount, total, price))
    excess = max(
        [min(amount, total - price.amount) for _, amount, total, price in counted if price is not None], default=0,
    )
    if excess > 0:
        if read is not None or (order.payment is not None and rail_get(order.payment.rail).in_ledger):
            raise PriceLimitPassed()
        counted = _cap_excess_given_back(order=order, counted=counted, excess=excess, email=email, month=month.date())
    for tier, _amount, total, price in counted:
        if price is None or total < price.amount:
            continue
        if Subscription.objects.filter(store_id=tier.store_id, email=email, status__in=LIVE_STATUSES).exists():
            continue
        plan = Start(tier=tier, price=price, email=email, buyer=buyer_for_email(email=email), pay_with=PaySource.NONE, origin=Origin.CAP)
        _start(plan, now=timezone.now(), amount=total, anchor=month)
        break
    return []


def _cap_excess_given_back(*, order: Order, counted: list, excess: int, email: str, month) -> list:
    """A card order paid ``excess`` past a cap: count only the rest towards each tier, and queue
    the refund of ``excess`` once this transaction commits (``cap_refunds``)."""
    logger.warning("order %s paid %s past a capped tier's monthly price: refunding it", order.pk, excess)
    kept = []
    for tier, amount, total, price in counted:
        back = min(excess, amount)
        if back:
            CapTotal.objects.filter(tier=tier, email=email, month=month).update(total=F("total") - back)
        kept.append((tier, amount - back, total - back, price))
    order_id = order.pk
    CapExcess.objects.create(order_id=order_id, amount=excess)  # owed, even if the queue below is lost
    transaction.on_commit(lambda: cap_excess_refund_task(order_id, excess))
    return kept


# What is left under the caps of the capped tiers gating a product for a reader this month (the
# smallest, if several gate it); NULL when none does. One indexed lookup by the gate's product.
CAP_LEFT_SQL = (
    "(SELECT MIN(cp.amount - COALESCE((SELECT ct.total FROM memberships_captotal ct "
    "WHERE ct.tier_id = t.id AND ct.email = %s AND ct.month = %s), 0)) "
    "FROM memberships_tiergate g JOIN memberships_tier t ON t.id = g.tier_id "
    "JOIN memberships_tierprice cp ON cp.tier_id = t.id AND cp.interval = 'month' "
    "WHERE g.product_id = %s AND t.cap_to_subscribe AND t.status = 'active')"
)


def cap_limit_sql(*, product_id: str, email: str) -> tuple[str, list]:
    """``cap_limit`` as a column of the unlock's first SELECT (``orders.pricing``)."""
    month = connection.ops.adapt_datefield_value(billing.month_start(timezone.now()).date())
    return CAP_LEFT_SQL, [email, month, product_id]


def cap_limit(*, product_id: str, email: str) -> int | None:
    """The most a reader may be charged this month for a post gated to capped tiers: what is left
    under the nearest cap; None when no capped tier gates it (registered with orders.pricing)."""
    sql, params = cap_limit_sql(product_id=product_id, email=email)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        return cursor.fetchone()[0]


def _cap_add(*, tier: Tier, email: str, month, amount: int) -> int:
    row, created = CapTotal.objects.get_or_create(tier=tier, email=email, month=month, defaults={"total": amount})
    if not created:
        CapTotal.objects.filter(pk=row.pk).update(total=F("total") + amount)
        row.refresh_from_db(fields=["total"])
    return row.total


def cap_progress(*, tier: Tier, email: str) -> tuple[int, int] | None:
    """(paid this month, cap) for a reader of a capped tier, for the paywall's "x of y" line."""
    if not tier.cap_to_subscribe:
        return None
    price = tier.prices.filter(interval=Interval.MONTH).first()
    if price is None:
        return None
    month = billing.month_start(timezone.now()).date()
    row = CapTotal.objects.filter(tier=tier, email=email.lower(), month=month).first()
    return (row.total if row else 0), price.amount


# --- Changes by the member or the creator --------------------------------------------------------


def _locked(sub: Subscription) -> Subscription:
    return Subscription.objects.select_for_update(of=("self",)).select_related("price__product", "tier", "store").get(pk=sub.pk)


def _live(sub: Subscription) -> None:
    if sub.status == SubscriptionStatus.ENDED:
        raise SubscriptionStateInvalid(gettext_noop("This membership has ended."))


def subscription_cancel(*, subscription: Subscription, at_period_end: bool = True, refund: bool = False) -> Subscription:
    """Cancel at the period's end (access until then; undo with ``subscription_cancel_undo``) or
    now (access stops; with ``refund``, the unused part of the current period's payment is
    refunded pro rata through the order's rail)."""
    now = timezone.now()
    with transaction.atomic():
        sub = _locked(subscription)
        _live(sub)
        if at_period_end and sub.current_period_end is not None:
            if sub.cancel_at_period_end:
                return sub
            sub.cancel_at_period_end, sub.canceled_at = True, now
            sub.save(update_fields=["cancel_at_period_end", "canceled_at", "updated_at"])
            subscription_events_record(sub, "subscription.canceled")
            return sub
        period = sub.periods.filter(number=sub.period_number, status=PeriodStatus.PAID).select_related("order").first()
        sub.status, sub.canceled_at, sub.ended_at = SubscriptionStatus.ENDED, now, now
        sub.save(update_fields=["status", "canceled_at", "ended_at", "updated_at"])
        subscription_events_record(sub, "subscription.canceled", "subscription.ended")
    if refund and period is not None and period.order is not None and period.end is not None:
        left = max(0, int((period.end - now).total_seconds()))
        whole = max(1, int((period.end - period.start).total_seconds()))
        order = period.order
        amount = prorate(order.amount_total - order.amount_refunded, min(left, whole), whole)
        if amount > 0:
            refund_create(store=sub.store, order_id=order.pk, amount=amount, reason="Membership canceled")
    return sub


@transaction.atomic
def subscription_cancel_undo(*, subscription: Subscription) -> Subscription:
    sub = _locked(subscription)
    _live(sub)
    if not sub.cancel_at_period_end:
        raise SubscriptionStateInvalid(gettext_noop("This membership is not set to end."))
    sub.cancel_at_period_end, sub.canceled_at = False, None
    sub.save(update_fields=["cancel_at_period_end", "canceled_at", "updated_at"])
    subscription_events_record(sub, "subscription.updated")
    return sub


@transaction.atomic
def subscription_pause(*, subscription: Subscription, periods: int) -> Subscription:
    """Skip the next 1 to 3 periods from the current one's end: nothing charged, no access while
    paused; the renewal after them charges again."""
    if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= MAX_PAUSE_PERIODS:
        raise SubscriptionInvalid(
            ngettext("Pause for 1 to %(max)s period.", "Pause for 1 to %(max)s periods.", MAX_PAUSE_PERIODS) % {"max": MAX_PAUSE_PERIODS},
            param="periods",
        )
    sub = _locked(subscription)
    _live(sub)
    if sub.status != SubscriptionStatus.ACTIVE or sub.price is None or sub.pay_with == PaySource.NONE:
        raise SubscriptionStateInvalid(gettext_noop("Only an active paid membership can be paused."))
    sub.pause_periods = periods
    sub.save(update_fields=["pause_periods", "updated_at"])
    subscription_events_record(sub, "subscription.updated")
    return sub


def subscription_resume(*, subscription: Subscription, buyer: Buyer | None = None) -> Subscription:
    """Undo a pause. A pause not started yet is forgotten. During a paused period the membership
    resumes at once (billing's rule): the paused period ends now, a new period starts now and is
    charged in full the way the member pays, and renewals move to that day (the anchor moves to
    now), so the member pays for the time they have access and no more. Refused, with nothing
    changed and the membership still paused, when the payment fails."""
    with transaction.atomic():
        sub = _locked(subscription)
        _live(sub)
        if not sub.pause_periods and sub.status != SubscriptionStatus.PAUSED:
            raise SubscriptionStateInvalid(gettext_noop("This membership is not paused."))
        if sub.status != SubscriptionStatus.PAUSED:
            sub.pause_periods = 0
            sub.save(update_fields=["pause_periods", "updated_at"])
            subscription_events_record(sub, "subscription.updated")
            return sub
    return _resume_now(sub=sub, buyer=buyer or sub.buyer, now=timezone.now())


def _resume_claim(*, sub: Subscription, row: SubscriptionPeriod, now: datetime) -> None:
    """Take the period that starts now (unique per subscription and number: a second click
    finds it taken) and cut the paused period short at now. Call inside a transaction."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        raise SubscriptionStateInvalid(gettext_noop("This membership is being resumed already.")) from None
    SubscriptionPeriod.objects.filter(subscription=sub, number=sub.period_number).update(end=now, updated_at=now)
    Subscription.objects.filter(pk=sub.pk).update(pause_periods=0)


def _resume_now(*, sub: Subscription, buyer: Buyer | None, now: datetime) -> Subscription:
    price = sub.price
    if sub.pending_price_id:  # a change chosen for the next renewal applies from now
        price = TierPrice.objects.select_related("product", "tier").get(pk=sub.pending_price_id)
    row = SubscriptionPeriod(
        subscription=sub, number=sub.period_number + 1, start=now, end=billing.period_bound(now, price.interval, 1),
        price=price, amount=price.amount, currency=price.currency, status=PeriodStatus.CHARGING, attempts=1,
    )
    if sub.pay_with == PaySource.WALLET:
        if buyer is None:
            raise BuyerRequired()
        with transaction.atomic():  # one transaction: an empty wallet leaves it all as it was
            _resume_claim(sub=sub, row=row, now=now)
            read = spend_read(buyer=buyer, store_id=sub.store_id, currency=price.currency)
            order_spend(store_id=sub.store_id, buyer=buyer, method="wallet", currency=price.currency,
                        lines=[membership_line(price)], read=read, context={"membership": ("renewal", row)})
        return Subscription.objects.get(pk=sub.pk)
    saved = sub.saved_method
    if saved is None or saved.detached_at is not None:
        raise SubscriptionInvalid(gettext_noop("Add a card or pay from your wallet to resume."), param="payment_method",
                                  code="card_required")
    with transaction.atomic():
        _resume_claim(sub=sub, row=row, now=now)

    def link(payment) -> None:
        SubscriptionPeriod.objects.filter(pk=row.pk).update(payment=payment)

    try:
        payment = payment_charge_saved(
            store=sub.store, saved=saved, amount=price.amount, currency=price.currency,
            description=f"Membership resumed ({price.tier_id})", idempotency_key=new_id("resume"),
            product=price.product, before_start=link,
        )
    except PaymentProcessorUnavailable:
        # The charge may have been made: the payment stays processing and the reconciliation
        # task finishes it, paying this period (its row names the payment) or failing it.
        raise
    except StallError:
        _resume_release(sub=sub, row=row)  # refused before any charge
        raise
    if payment.status == PaymentStatus.FAILED:
        _resume_release(sub=sub, row=row)
        _payment_check(payment)
    return Subscription.objects.get(pk=sub.pk)


@transaction.atomic
def _resume_release(*, sub: Subscription, row: SubscriptionPeriod) -> None:
    """The resume's charge failed: the membership stays paused as it was."""
    SubscriptionPeriod.objects.filter(pk=row.pk, status=PeriodStatus.CHARGING).delete()
    SubscriptionPeriod.objects.filter(subscription=sub, number=sub.period_number).update(end=sub.current_period_end)
    Subscription.objects.filter(pk=sub.pk).update(pause_periods=sub.pause_periods)


def subscription_change(*, subscription: Subscription, tier: Tier, interval: str | None = None,
                        buyer: Buyer | None = None) -> Subscription:
    """Move to another tier (or price) of the store. An upgrade (a higher price, same interval)
    happens now and charges the prorated difference for the rest of the period, the way the
    member pays (wallet or saved card); anything else (a lower price, another interval) takes
    effect at the next renewal, with no refund. Refused with nothing charged: an archived tier,
    a tier of another store (not found), a full tier."""
    sub = Subscription.objects.select_related("price__product", "tier", "store", "buyer", "saved_method").get(pk=subscription.pk)
    _live(sub)
    if tier.store_id != sub.store_id:
        raise TierNotFound()
    if tier.status != TierStatus.ACTIVE:
        raise TierArchived(gettext_noop("That tier is archived: members cannot move to it."))
    current = sub.price
    price = tier_price_for(tier=tier, interval=interval or (current.interval if current else None))
    if price is None or current is None:
        raise SubscriptionInvalid(gettext_noop("Free tiers are joined and left, not changed to."), param="tier")
    if price.pk == current.pk:
        raise SubscriptionInvalid(gettext_noop("This is the membership's price already."), param="tier")
    if tier.member_limit is not None and tier.pk != sub.tier_id:
        members = Subscription.objects.filter(tier=tier, status__in=LIVE_STATUSES).count()
        if members >= tier.member_limit:
            raise MemberLimitReached()
    if price.interval != current.interval or price.amount <= current.amount or sub.status != SubscriptionStatus.ACTIVE:
        with transaction.atomic():
            sub = _locked(sub)
            sub.pending_price = price
            sub.save(update_fields=["pending_price", "updated_at"])
            subscription_events_record(sub, "subscription.updated")
        return sub
    return _upgrade(sub=sub, price=price, buyer=buyer or sub.buyer)


@transaction.atomic
def subscription_change_undo(*, subscription: Subscription) -> Subscription:
    """Forget a change waiting for the next renewal (a downgrade, another interval): the member
    renews at the current price. Nothing was charged for the change, so nothing is refunded."""
    sub = _locked(subscription)
    _live(sub)
    if sub.pending_price_id is None:
        raise SubscriptionStateInvalid(gettext_noop("This membership has no change waiting for the next renewal."))
    sub.pending_price = None
    sub.save(update_fields=["pending_price", "updated_at"])
    subscription_events_record(sub, "subscription.updated")
    return sub


def upgrade_amount(*, sub: Subscription, price: TierPrice, now: datetime | None = None) -> int:
    """The prorated difference for the rest of the current period (same interval)."""
    now = now or timezone.now()
    whole = max(1, int((sub.current_period_end - sub.current_period_start).total_seconds()))
    left = min(whole, max(0, int((sub.current_period_end - now).total_seconds())))
    return prorate(price.amount - sub.price.amount, left, whole)


def _upgrade(*, sub: Subscription, price: TierPrice, buyer: Buyer | None) -> Subscription:
    amount = upgrade_amount(sub=sub, price=price)
    if amount <= 0:
        with transaction.atomic():
            return _upgrade_apply(sub=_locked(sub), price=price)
    if sub.pay_with == PaySource.WALLET:
        if buyer is None:
            raise BuyerRequired()
        with transaction.atomic():
            read = spend_read(buyer=buyer, store_id=sub.store_id, currency=price.currency)
            order_spend(store_id=sub.store_id, buyer=buyer, method="wallet", currency=price.currency,
                        lines=[membership_line(price, amount)], read=read, context={"membership": ("upgrade", (sub, price))})
        return Subscription.objects.get(pk=sub.pk)
    if sub.saved_method is None:
        raise SubscriptionInvalid(gettext_noop("Add a card or pay from your wallet to upgrade."), param="payment_method", code="card_required")

    def pending(payment) -> None:
        PendingJoin.objects.create(checkout_id=payment.checkout_id, price=price, email=sub.email, subscription=sub)

    payment = payment_charge_saved(
        store=sub.store, saved=sub.saved_method, amount=amount, currency=price.currency,
        description=f"Upgrade to {price.tier.name}", idempotency_key=f"{sub.pk}:upgrade:{price.pk}:{sub.period_number}",
        product=price.product, before_start=pending,
    )
    _payment_check(payment)
    return Subscription.objects.get(pk=sub.pk)


def _upgrade_apply(*, sub: Subscription, price: TierPrice) -> Subscription:
    sub = _locked(sub)
    sub.price, sub.tier_id, sub.pending_price = price, price.tier_id, None
    sub.save(update_fields=["price", "tier", "pending_price", "updated_at"])
    sub.tier = price.tier
    subscription_events_record(sub, "subscription.updated")
    return sub


def subscription_pay_with_set(*, subscription: Subscription, pay_with: str, buyer: Buyer | None = None,
                              payment_method: str = "", card_fallback: bool = False) -> Subscription:
    """Change how renewals are paid: ``wallet`` (the member's; with ``card_fallback`` and a
    ``payment_method``, a card for when the wallet cannot pay) or ``card`` (``payment_method`` is
    saved). A capped member opts in to renewals this way. A past-due member who fixes their payment
    is retried at once (``renewals.subscription_renew``) and keeps the membership if it is paid."""
    if pay_with not in JOIN_METHODS:
        raise InvalidRequest(
            gettext("Choose how to pay: %(methods)s.") % {"methods": ", ".join(JOIN_METHODS)}, param="pay_with", code="invalid_payment_method"
        )
    sub = Subscription.objects.select_related("store", "buyer").get(pk=subscription.pk)
    _live(sub)
    if sub.price is None:
        raise SubscriptionInvalid(gettext_noop("A free membership has nothing to pay."), param="pay_with")
    buyer = buyer or sub.buyer
    if pay_with == "wallet" and buyer is None:
        raise BuyerRequired()
    saved = None
    if payment_method:
        saved = _card_saved(email=sub.email, payment_method=payment_method, store=sub.store)
    elif pay_with == "card":
        raise InvalidRequest(gettext_noop("Give the card to charge."), param="payment_method", code="card_required")
    with transaction.atomic():
        sub = _locked(sub)
        sub.pay_with, sub.buyer = pay_with, buyer
        if saved is not None:
            sub.saved_method = saved
        sub.card_fallback = bool(card_fallback and (saved or sub.saved_method)) if pay_with == "wallet" else False
        if sub.status == SubscriptionStatus.PAST_DUE:
            sub.next_retry_at = timezone.now()
        sub.save()
        subscription_events_record(sub, "subscription.updated")
    return sub


def subscription_card_setup(*, subscription: Subscription) -> CardSetup:
    """Start keeping a Stripe card for a member's renewals: the member enters it on a page with
    Stripe's Payment Element, and ``subscription_pay_with_set`` with the ``seti_…`` Stripe returns
    saves it and charges renewals to it."""
    sub = Subscription.objects.select_related("store").get(pk=subscription.pk)
    _live(sub)
    if sub.price is None:
        raise SubscriptionInvalid(gettext_noop("A free membership has nothing to pay."), param="pay_with")
    return payment_method_setup_start(email=sub.email, store=sub.store)


def join_card_setup(*, tier: Tier, email: str) -> CardSetup:
    """Start keeping a Stripe card to start ``tier``'s trial with (charged when it ends):
    ``subscription_join`` with the ``seti_…`` Stripe returns joins."""
    email = email_normalize(email).lower()
    tier = Tier.objects.select_related("store").get(pk=tier.pk)
    if tier.status != TierStatus.ACTIVE:
        raise TierArchived()
    return payment_method_setup_start(email=email, store=tier.store)
def _language_best_known(*, store_id: str, email: str, buyer: Buyer | None) -> str:
    """The language a reader last used with this store, for emails about something they did not
    do themselves (a membership the creator gave them from the English dashboard or API): their
    newest checkout or membership here, else their wallet's, else "" (the default)."""
    rows = [
        Checkout.objects.filter(store_id=store_id, email__iexact=email).order_by("-created_at").values_list("created_at", "language").first(),
        Subscription.objects.filter(store_id=store_id, email=email).order_by("-created_at").values_list("created_at", "language").first(),
    ]
    known = [row for row in rows if row is not None]
    if known:
        return max(known)[1]
    if buyer is not None:
        return Wallet.objects.filter(buyer=buyer).exclude(language="").values_list("language", flat=True).first() or ""
    return ""


@transaction.atomic
def subscription_complimentary_create(*, tier: Tier, email: str, ends_at: datetime) -> Subscription:
    """A membership the creator gives, free until ``ends_at``; it ends then unless the member
    chooses to pay. Its emails (the end, a failed renewal) are in the member's best known
    language, not the dashboard's."""
    email = email_normalize(email).lower()
    now = timezone.now()
    if not isinstance(ends_at, datetime) or ends_at <= now:
        raise SubscriptionInvalid("The end date must be in the future.", param="ends_at")
    locked = _tier_locked(tier)
    _joinable(tier=locked, email=email)
    price = tier_price_for(tier=locked)
    buyer = buyer_for_email(email=email)
    plan = Start(tier=locked, price=price, email=email, buyer=buyer, pay_with=PaySource.NONE,
                 origin=Origin.COMPLIMENTARY, ends_at=ends_at,
                 language=_language_best_known(store_id=locked.store_id, email=email, buyer=buyer))
    return _start(plan, now=now)


@transaction.atomic
def subscription_feed_token_rotate(*, subscription: Subscription) -> Subscription:
    """A new secret for the member's private feed; the old address stops working."""
    sub = _locked(subscription)
    sub.feed_token = feed_token_new()
    sub.save(update_fields=["feed_token", "updated_at"])
    return sub


"""Writes: meters, plans with their metered prices, and customers' usage subscriptions.

Every write validates what an API client or a form may send and raises the domain's errors with
the parameter to fix; another store's meter, plan or customer is "not found".
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from stall.core.errors import InvalidRequest
from stall.core.money import amount_validate
from stall.orders.tiers import MembershipChange, tier_members, tiers_for_store
from stall.payments.models import SavedPaymentMethod
from stall.payments.saved_methods import payment_method_save
from stall.stores.models import Store

from .billing import usage_subscription_retry
from .errors import (
    AlreadySubscribed,
    MeterInvalid,
    MeterKeyTaken,
    PlanInvalid,
    UsageSubscriptionInvalid,
)
from .models import (
    Aggregation,
    BillingMode,
    Meter,
    MeteredPrice,
    Plan,
    PriceModel,
    UsageSubscription,
    UsageSubscriptionStatus,
)
from .rating import period_after
from .rollups import meter_rollups_rebuild
from .selectors import customer_get, meter_by_key, usage_subscription_for_customer

KEY_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
PROPERTY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
PRICE_MAX = Decimal("1e15")


def _text(value, *, param: str, max_length: int, error=MeterInvalid, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise error("Must be text.", param=param)
    value = value.strip()
    if required and not value:
        raise error("This field is required.", param=param)
    if len(value) > max_length or "\x00" in value:
        raise error(f"At most {max_length} characters.", param=param)
    return value


def _filters_clean(filters) -> dict:
    if filters in (None, ""):
        return {}
    if not isinstance(filters, dict):
        raise MeterInvalid('Filters must be an object such as {"region": "eu"}.', param="filters")
    for key, wanted in filters.items():
        if not PROPERTY_RE.fullmatch(key):
            raise MeterInvalid(f"Filter keys are property names (letters, digits, _ and -): {key!r}.", param="filters")
        values = wanted if isinstance(wanted, list) else [wanted]
        if not values or any(not isinstance(v, (str, int, float)) or isinstance(v, bool) for v in values):
            raise MeterInvalid(f"The filter on {key!r} must be a text or number, or a list of them.", param="filters")
    return filters


def _meter_fields(*, name, event_name, aggregation, property, filters) -> dict:
    name = _text(name, param="name", max_length=120)
    event_name = _text(event_name, param="event_name", max_length=120)
    if aggregation not in Aggregation.values:
        raise MeterInvalid(f"Aggregation must be one of: {', '.join(Aggregation.values)}.", param="aggregation")
    property = _text(property, param="property", max_length=64, required=False)
    if aggregation == Aggregation.COUNT:
        property = ""
    elif not PROPERTY_RE.fullmatch(property):
        raise MeterInvalid(f"A {aggregation} meter needs the property it reads (letters, digits, _ and -).",
                           param="property")
    return dict(name=name, event_name=event_name, aggregation=aggregation, property=property,
                filters=_filters_clean(filters))


def meter_create(*, store: Store, key: str, name: str, event_name: str, aggregation: str = "count",
                 property: str = "", filters: dict | None = None) -> Meter:
    key = _text(key, param="key", max_length=64)
    if not KEY_RE.fullmatch(key):
        raise MeterInvalid("The key is lower-case letters, digits, _, . and -, such as api_calls.", param="key")
    fields = _meter_fields(name=name, event_name=event_name, aggregation=aggregation, property=property,
                           filters=filters)
    try:
        with transaction.atomic():
            _store_lock(store.pk)
            meter = Meter.objects.create(store=store, key=key, **fields)
            meter_rollups_rebuild(meter=meter)  # events of its name may be stored already
            return meter
    except IntegrityError:
        raise MeterKeyTaken(param="key") from None


def _store_lock(store_id: str) -> None:
    """Wait for the store's batches of events being written, and hold off new ones, while a
    meter's rollups are (re)built (a batch holds a share lock on the store while it rolls up)."""
    Store.objects.select_for_update().filter(pk=store_id).first()


def meter_update(*, meter: Meter, **changes) -> Meter:
    """Change a meter's name, event name, aggregation, property or filters (not its key). The
    change applies to every period rated after it, including the current one."""
    current = dict(name=meter.name, event_name=meter.event_name, aggregation=meter.aggregation,
                   property=meter.property, filters=meter.filters)
    current.update({k: v for k, v in changes.items() if k in current})
    fields = _meter_fields(**current)
    counted = ("event_name", "aggregation", "property", "filters")
    recount = any(fields[f] != getattr(meter, f) for f in counted)
    with transaction.atomic():
        if recount:
            _store_lock(meter.store_id)
        for field, value in fields.items():
            setattr(meter, field, value)
        meter.save()
        if recount:
            meter_rollups_rebuild(meter=meter)
    return meter


def _decimal(value, *, param: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        raise PlanInvalid("Must be a number of minor units, such as \"0.2\".", param=param)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PlanInvalid("Must be a number of minor units, such as \"0.2\".", param=param) from None
    if not number.is_finite() or number < 0 or number >= PRICE_MAX:
        raise PlanInvalid("Must be a number of minor units, 0 or more.", param=param)
    if number != number.quantize(Decimal("0.000001")):
        raise PlanInvalid("A unit price has at most 6 decimals of the minor unit.", param=param)
    return number


def _price_clean(*, store: Store, raw, index: int) -> MeteredPrice:
    param = f"prices.{index}"
    if not isinstance(raw, dict):
        raise PlanInvalid("Each price is an object.", param=param)
    meter = meter_by_key(store=store, key=raw.get("meter") if isinstance(raw.get("meter"), str) else "")
    model = raw.get("model", PriceModel.PER_UNIT)
    if model not in PriceModel.values:
        raise PlanInvalid(f"Model must be one of: {', '.join(PriceModel.values)}.", param=f"{param}.model")
    price = MeteredPrice(meter=meter, model=model)
    if model == PriceModel.TIERED:
        tiers = raw.get("tiers")
        if not isinstance(tiers, list) or not tiers:
            raise PlanInvalid("A tiered price needs its tiers.", param=f"{param}.tiers")
        clean, last = [], Decimal(0)
        for n, tier in enumerate(tiers):
            tparam = f"{param}.tiers.{n}"
            if not isinstance(tier, dict):
                raise PlanInvalid("Each tier is an object.", param=tparam)
            up_to = tier.get("up_to")
            if up_to is not None:
                up_to = _decimal(up_to, param=f"{tparam}.up_to")
                if up_to <= last:
                    raise PlanInvalid("Each tier ends above the one before.", param=f"{tparam}.up_to")
                last = up_to
            elif n != len(tiers) - 1:
                raise PlanInvalid("Only the last tier has no end.", param=f"{tparam}.up_to")
            unit = _decimal(tier.get("unit_price"), param=f"{tparam}.unit_price")
            clean.append({"up_to": None if up_to is None else str(up_to), "unit_price": str(unit)})
        if clean[-1]["up_to"] is not None:
            raise PlanInvalid("The last tier has no end (up_to null).", param=f"{param}.tiers")
        price.tiers = clean
    else:
        price.unit_price = _decimal(raw.get("unit_price"), param=f"{param}.unit_price")
        if model == PriceModel.PACKAGE:
            size = raw.get("package_size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise PlanInvalid("A package holds a whole number of units, 1 or more.", param=f"{param}.package_size")
            price.package_size = size
    return price


def _prices_clean(*, store: Store, prices) -> list[MeteredPrice]:
    if not isinstance(prices, list):
        raise PlanInvalid("Prices must be a list.", param="prices")
    clean = [_price_clean(store=store, raw=raw, index=n) for n, raw in enumerate(prices)]
    meters = [p.meter_id for p in clean]
    if len(set(meters)) != len(meters):
        raise PlanInvalid("A plan prices each meter once.", param="prices")
    return clean


def _tier_clean(*, store: Store, tier, plan: Plan | None = None) -> str:
    """A tier of the store ("" for none) that no other plan of the store carries."""
    if tier in (None, ""):
        return ""
    if not isinstance(tier, str) or tier not in {pk for pk, _ in tiers_for_store(store_id=store.pk)}:
        raise PlanInvalid("No such membership tier.", param="tier", code="resource_missing")
    taken = Plan.objects.filter(store=store, tier_id=tier).exclude(pk=plan.pk if plan else None).first()
    if taken is not None:
        raise PlanInvalid(f"This tier already carries the plan {taken.name!r}.", param="tier", code="tier_taken")
    return tier


@transaction.atomic
def plan_create(*, store: Store, name: str, prices: list, fixed_fee: int = 0, tier: str | None = None) -> Plan:
    """A plan in the store's currency: a fixed fee a period (0 for none) and metered prices.
    With ``tier`` (a membership tier's id) the tier carries the plan: each member is put on it
    from the time they join, billed in arrears, until their membership ends (``membership_follow``)."""
    name = _text(name, param="name", max_length=120, error=PlanInvalid)
    amount_validate(fixed_fee, param="fixed_fee")
    clean = _prices_clean(store=store, prices=prices)
    tier_id = _tier_clean(store=store, tier=tier)
    plan = Plan.objects.create(store=store, name=name, currency=store.currency, fixed_fee=fixed_fee, tier_id=tier_id)
    for price in clean:
        price.plan = plan
    MeteredPrice.objects.bulk_create(clean)
    _tier_members_follow(tier_ids=[tier_id])
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, name: str | None = None, fixed_fee: int | None = None,
                prices: list | None = None, tier: str | None = None) -> Plan:
    """Change a plan; new prices replace the old ones and rate every period not yet closed.
    ``tier`` attaches the plan to a tier ("" detaches it): the tier's members are put on the plan
    at once, as those who join later are; detached, the members it billed through the tier come
    off it, billed for what they used (``membership_follow``)."""
    tier_was = plan.tier_id
    if name is not None:
        plan.name = _text(name, param="name", max_length=120, error=PlanInvalid)
    if fixed_fee is not None:
        plan.fixed_fee = amount_validate(fixed_fee, param="fixed_fee")
    if tier is not None:
        plan.tier_id = _tier_clean(store=plan.store, tier=tier, plan=plan)
    if prices is not None:
        clean = _prices_clean(store=plan.store, prices=prices)
    plan.save()
    if prices is not None:
        plan.prices.all().delete()
        for price in clean:
            price.plan = plan
        MeteredPrice.objects.bulk_create(clean)
    if plan.tier_id != tier_was:
        _tier_members_follow(tier_ids=[tier_was, plan.tier_id])
    return plan


def _tier_members_follow(*, tier_ids: list[str]) -> None:
    """A plan attached to or detached from tiers: their members are put on the plan their tier
    carries now, or taken off the one it no longer carries, as when a membership changes."""
    for tier_id in tier_ids:
        if tier_id:
            for change in tier_members(tier_id=tier_id):
                membership_follow(change=change)


def _card_save(*, customer, payment_method) -> SavedPaymentMethod:
    """Keep the customer's card for their invoices: a sandbox test card or a Stripe ``pm_…``."""
    if not isinstance(payment_method, str) or not payment_method.strip():
        raise UsageSubscriptionInvalid("Give a card: a sandbox card or a Stripe payment method.", param="payment_method")
    payment_method = payment_method.strip()
    if payment_method in ("wallet", "tab"):
        raise UsageSubscriptionInvalid("Give a card; the wallet pays first when wallet_first is true.",
                                       param="payment_method", code="card_required")
    rail = "sandbox" if payment_method.startswith("sandbox_") else "stripe"
    return payment_method_save(email=customer.email, rail=rail, payment_method=payment_method, store=customer.store)


def usage_subscription_create(*, store: Store, customer_id: str, plan_id: str, billing: str = BillingMode.LIVE,
                              threshold: int = 100, payment_method: str | None = None, wallet_first: bool = True,
                              membership_id: str = "", saved: SavedPaymentMethod | None = None) -> UsageSubscription:
    """Put a customer on a plan from now to the end of this calendar month (UTC), then monthly.
    Live billing charges their wallet under the allowance they gave the store, each time
    ``threshold`` minor units have accrued. Arrears billing invoices each period at its end,
    paid from the wallet when ``wallet_first`` (and the customer gave an allowance), else or
    when the wallet refuses by the card ``payment_method`` (a sandbox card, a Stripe ``pm_…``),
    saved now for the customer (see ``invoicing``). A card is refused before anything is made."""
    customer = customer_get(store=store, customer_id=customer_id)
    plan = Plan.objects.filter(store=store, pk=plan_id).first() if isinstance(plan_id, str) else None
    if plan is None:
        raise UsageSubscriptionInvalid("No such plan.", param="plan", code="resource_missing")
    if billing not in BillingMode.values:
        raise UsageSubscriptionInvalid(f"Billing must be one of: {', '.join(BillingMode.values)}.", param="billing")
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise UsageSubscriptionInvalid("The threshold is a whole number of minor units, 1 or more.", param="threshold")
    if not isinstance(wallet_first, bool):
        raise UsageSubscriptionInvalid("wallet_first is true or false.", param="wallet_first")
    if payment_method is not None and billing != BillingMode.ARREARS:
        raise UsageSubscriptionInvalid("A card pays arrears invoices; live billing charges the wallet.",
                                       param="payment_method")
    if usage_subscription_for_customer(customer_id=customer.pk) is not None:
        raise AlreadySubscribed(param="customer")  # before a card is saved for nothing
    if payment_method is not None:
        saved = _card_save(customer=customer, payment_method=payment_method)
    now = timezone.now()
    try:
        with transaction.atomic():
            return UsageSubscription.objects.create(
                store=store, customer=customer, plan=plan, billing=billing, threshold=threshold, period_start=now,
                period_end=period_after(now), saved_method=saved, wallet_first=wallet_first,
                membership_id=membership_id,
            )
    except IntegrityError:
        raise AlreadySubscribed(param="customer") from None


def usage_subscription_card_set(*, subscription: UsageSubscription, payment_method: str | None = None,
                                wallet_first: bool | None = None) -> UsageSubscription:
    """Save a new card for an arrears subscription's invoices (and/or say whether the wallet pays
    first). A past-due invoice is then tried again at once (``billing.usage_subscription_retry``)."""
    if subscription.status == UsageSubscriptionStatus.CANCELED:
        raise UsageSubscriptionInvalid("This usage subscription is canceled.", param="subscription",
                                       code="subscription_canceled")
    if subscription.billing != BillingMode.ARREARS:
        raise UsageSubscriptionInvalid("A card pays arrears invoices; live billing charges the wallet.",
                                       param="payment_method")
    if wallet_first is not None and not isinstance(wallet_first, bool):
        raise UsageSubscriptionInvalid("wallet_first is true or false.", param="wallet_first")
    if payment_method is None and wallet_first is None:
        raise InvalidRequest("Give a payment_method, wallet_first, or both.", param="payment_method")
    saved = _card_save(customer=subscription.customer, payment_method=payment_method) if payment_method is not None else None
    changes = {"updated_at": timezone.now(), "next_retry_at": None}  # a new card is tried at once
    if saved is not None:
        changes["saved_method"] = saved
    if wallet_first is not None:
        changes["wallet_first"] = wallet_first
    UsageSubscription.objects.filter(pk=subscription.pk).update(**changes)
    subscription.refresh_from_db()
    if subscription.status == UsageSubscriptionStatus.PAST_DUE:
        return usage_subscription_retry(subscription=subscription)
    return subscription


@transaction.atomic
def usage_subscription_cancel(*, subscription: UsageSubscription) -> UsageSubscription:
    """Stop billing; usage already charged stays charged, what accrued since is not charged."""
    UsageSubscription.objects.filter(pk=subscription.pk).update(
        status=UsageSubscriptionStatus.CANCELED, updated_at=timezone.now()
    )
    subscription.refresh_from_db()
    return subscription


def usage_subscription_end(*, subscription: UsageSubscription, now=None) -> None:
    """End a subscription now, billing what it used: its period is cut short at ``now`` and,
    once that last period is paid (the periodic task), it is canceled."""
    now = now or timezone.now()
    with transaction.atomic():
        sub = UsageSubscription.objects.select_for_update().filter(pk=subscription.pk).first()
        if sub is None or sub.status == UsageSubscriptionStatus.CANCELED:
            return
        sub.ending, sub.period_end = True, min(sub.period_end, now)
        sub.save(update_fields=["ending", "period_end", "updated_at"])


def membership_follow(*, change: MembershipChange) -> None:
    """A membership started, changed or ended (``orders.tiers``): keep the member's usage
    subscription on the plan their tier carries. Joining a tier that carries a plan puts the
    member on it, billed in arrears — from the wallet first when they pay the tier from it, with
    the card they gave the tier; leaving the tier ends it, billing what was used (its period is
    cut short and billed by the periodic task). Moving to a tier with another plan cuts the
    period the same way and goes on with the new plan from then. A member who already has a
    usage subscription of their own keeps it: usage is rated once."""
    current = UsageSubscription.objects.filter(membership_id=change.membership_id).exclude(
        status=UsageSubscriptionStatus.CANCELED).exclude(ending=True).select_related("plan").first()
    plan = None
    if change.live:
        plan = Plan.objects.filter(store_id=change.store_id, tier_id=change.tier_id).first() if change.tier_id else None
    if current is not None:
        if plan is not None and current.plan_id == plan.pk:
            return
        usage_subscription_end(subscription=current)
    if plan is None:
        return
    existing = usage_subscription_for_customer(customer_id=change.customer_id)
    if existing is not None:
        if existing.ending and existing.membership_id:
            # A tier's subscription on its way out (the member moved tiers, or left and came back):
            # its shortened period is billed on its plan, then it goes on with this one.
            UsageSubscription.objects.filter(pk=existing.pk, ending=True).update(
                pending_plan=plan, membership_id=change.membership_id, updated_at=timezone.now())
        return
    saved = SavedPaymentMethod.objects.filter(pk=change.saved_method_id).first() if change.saved_method_id else None
    try:
        usage_subscription_create(
            store=plan.store, customer_id=change.customer_id, plan_id=plan.pk, billing=BillingMode.ARREARS,
            wallet_first=change.pay_with != "card", membership_id=change.membership_id, saved=saved,
        )
    except AlreadySubscribed:  # a race with another subscription of the customer: theirs stands
        pass

"""Usage-based billing: meters, metered prices, plans, customers' usage subscriptions, and the
usage events themselves.

A ``Meter`` turns a store's usage events of one name into a quantity (count, sum, max,
unique_count or latest of a property), optionally only the events whose properties match a
filter. A ``Plan`` holds ``MeteredPrice`` rows, one per meter, each pricing the period's quantity
in exact ``Decimal`` minor units (see ``rating``). A ``UsageSubscription`` puts one customer on
one plan, billed live from their wallet (under the allowance they gave the store) or in arrears
at period end (a ``UsageInvoice`` with one line per price).

``UsageEvent`` rows are kept; they are unique per (store, event id), the integrator's
idempotency key, and written by one bulk INSERT per batch (see ``ingest``).
"""

from django.db import models
from django.db.models import Q

from stall.accounts.models import Customer
from stall.core.ids import PrefixedIdField
from stall.payments.models import SavedPaymentMethod
from stall.stores.models import Store

# Unit prices are minor units with up to 6 decimals: 0.2¢ is Decimal("0.2"), 0.000001¢ the least.
PRICE_DIGITS = dict(max_digits=24, decimal_places=6)


class Aggregation(models.TextChoices):
    COUNT = "count", "Count of events"
    SUM = "sum", "Sum of a property"
    MAX = "max", "Largest value of a property"
    UNIQUE_COUNT = "unique_count", "Count of distinct values of a property"
    LATEST = "latest", "Latest value of a property"


# The aggregations that read a number from the event's property.
NUMERIC_AGGREGATIONS = (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST)


class Meter(models.Model):
    id = PrefixedIdField(prefix="mtr")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="meters")
    key = models.SlugField(max_length=64)  # "api_calls": how the API and the prices name it
    name = models.CharField(max_length=120)
    event_name = models.CharField(max_length=120)  # the events it counts
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices, default=Aggregation.COUNT)
    property = models.CharField(max_length=64, blank=True)  # for every aggregation but count
    # {"region": "eu"} or {"region": ["eu", "uk"]}: only events whose properties match every key.
    filters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "key"], name="metering_meter_unique_key")]
        indexes = [models.Index(fields=["store", "-id"])]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    id = PrefixedIdField(prefix="plan")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="usage_plans")
    name = models.CharField(max_length=120)
    currency = models.CharField(max_length=3)
    fixed_fee = models.BigIntegerField(default=0)  # minor units a period, due with its usage
    # The membership tier (its id, ``tier_…``) whose members are put on this plan while they are
    # members; "" for none. By id, not a foreign key: memberships is a sibling domain (see
    # ``stall.orders.tiers``), which also answers which tiers exist.
    tier_id = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-id"])]
        constraints = [
            models.CheckConstraint(condition=Q(fixed_fee__gte=0), name="metering_plan_fee_positive"),
            # A tier carries at most one plan: a member is on one usage subscription.
            models.UniqueConstraint(fields=["store", "tier_id"], condition=~Q(tier_id=""), name="metering_plan_one_per_tier"),
        ]

    def __str__(self) -> str:
        return self.name


class PriceModel(models.TextChoices):
    PER_UNIT = "per_unit", "Per unit"
    TIERED = "tiered", "Tiered (graduated)"
    PACKAGE = "package", "Per package"


class MeteredPrice(models.Model):
    """How one meter's quantity over a period is priced on a plan (see ``rating.price_rate``)."""

    id = PrefixedIdField(prefix="mprice")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="prices")
    model = models.CharField(max_length=10, choices=PriceModel.choices, default=PriceModel.PER_UNIT)
    unit_price = models.DecimalField(**PRICE_DIGITS, default=0)  # per_unit; per package for package
    package_size = models.PositiveBigIntegerField(default=1)  # package: units in one package
    # tiered: [{"up_to": 1000, "unit_price": "0"}, {"up_to": null, "unit_price": "0.1"}]
    tiers = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plan", "meter"], name="metering_price_one_per_meter"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="metering_price_not_negative"),
            models.CheckConstraint(condition=Q(package_size__gte=1), name="metering_package_size_positive"),
        ]


class BillingMode(models.TextChoices):
    LIVE = "live", "Live from the wallet"
    ARREARS = "arrears", "In arrears"


class UsageSubscriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELED = "canceled", "Canceled"


class UsageSubscription(models.Model):
    """A customer on a plan. ``charged`` is what was charged for the current period so far, in
    whole minor units; what is accrued and not yet charged is the period's exact cost less it."""

    id = PrefixedIdField(prefix="usub")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="usage_subscriptions")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="usage_subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    billing = models.CharField(max_length=10, choices=BillingMode.choices, default=BillingMode.LIVE)
    threshold = models.BigIntegerField(default=100)  # live: charge when this much has accrued
    status = models.CharField(
        max_length=10, choices=UsageSubscriptionStatus.choices, default=UsageSubscriptionStatus.ACTIVE
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    charged = models.BigIntegerField(default=0)
    charges_made = models.PositiveIntegerField(default=0)  # this period: names each charge's idempotency key
    failure_message = models.CharField(max_length=255, blank=True)
    # Arrears: the card the invoice is charged to, and whether the wallet (under the allowance)
    # is tried first. With no card the wallet pays alone.
    saved_method = models.ForeignKey(
        SavedPaymentMethod, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    wallet_first = models.BooleanField(default=True)
    # Dunning of a declined card (billing.CARD_RETRY_DAYS): when the invoice is tried again.
    past_due_since = models.DateTimeField(null=True, blank=True)
    card_retries = models.PositiveSmallIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # Made for a membership of a tier carrying the plan (``memberships`` subscription id, sub_…);
    # ended with it.
    membership_id = models.CharField(max_length=40, blank=True, default="")
    # Ending: the current period was cut short (the membership ended); once it is paid the
    # subscription is canceled instead of starting another.
    ending = models.BooleanField(default=False)
    # Ending with a plan to go on with: the member moved to (or rejoined) a tier carrying it. The
    # shortened period is billed on the old plan; the next one starts on this one.
    pending_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["store", "-id"]), models.Index(fields=["status", "period_end"])]
        constraints = [
            # One subscription per customer still billed: usage is rated once.
            models.UniqueConstraint(
                fields=["customer"], condition=~Q(status="canceled"), name="metering_one_subscription_per_customer"
            ),
            models.CheckConstraint(condition=Q(threshold__gte=1), name="metering_threshold_positive"),
        ]


class UsageCharge(models.Model):
    """A charge of the customer's wallet for usage: live (the threshold reached), at period end,
    or an arrears invoice's payment. ``exact`` is the accrued cost it settled, before rounding."""

    id = PrefixedIdField(prefix="uch")
    subscription = models.ForeignKey(UsageSubscription, on_delete=models.PROTECT, related_name="charges")
    period_start = models.DateTimeField()
    amount = models.BigIntegerField()
    exact = models.DecimalField(**PRICE_DIGITS)
    currency = models.CharField(max_length=3)
    charge_id = models.CharField(max_length=40)  # the wallet charge (ch_…) that moved the money
    created_at = models.DateTimeField(auto_now_add=True)


class InvoiceStatus(models.TextChoices):
    CHARGING = "charging", "Charging the card"  # claimed: the card charge is in flight
    PAID = "paid", "Paid"
    FAILED = "failed", "Payment failed"
    EMPTY = "empty", "Nothing to pay"
    # Below the card's minimum charge: owed on the next period's invoice, as a line of its own.
    CARRIED = "carried", "Carried to the next invoice"


class UsageInvoice(models.Model):
    """An arrears subscription's period, rated at its end: one line per price."""

    id = PrefixedIdField(prefix="uinv")
    subscription = models.ForeignKey(UsageSubscription, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices)
    # What paid it: a wallet charge (ch_…) or a card payment (pay_…).
    charge_id = models.CharField(max_length=40, blank=True)
    paid_with = models.CharField(max_length=8, blank=True)  # "wallet", "card"
    attempts = models.PositiveIntegerField(default=0)  # card charges tried: names each one's idempotency key
    carried_into = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="carried")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period_start"], name="metering_invoice_once_per_period"),
        ]


class LineKind(models.TextChoices):
    FEE = "fee", "Fixed fee"
    USAGE = "usage", "Usage"
    ADJUSTMENT = "adjustment", "Late usage of an earlier period"
    CARRIED = "carried", "Carried from an earlier invoice"


class UsageInvoiceLine(models.Model):
    kind = models.CharField(max_length=10, choices=LineKind.choices, default=LineKind.USAGE)
    invoice = models.ForeignKey(UsageInvoice, on_delete=models.CASCADE, related_name="lines")
    description = models.CharField(max_length=120)
    meter_key = models.CharField(max_length=64, blank=True)
    quantity = models.DecimalField(max_digits=30, decimal_places=6)
    exact = models.DecimalField(**PRICE_DIGITS)
    amount = models.BigIntegerField()
    # An adjustment or a carried amount: the earlier period it is for.
    adjusts_period = models.DateTimeField(null=True, blank=True)


class BilledPeriod(models.Model):
    """A closed period of a subscription and the quantities it was billed for, per meter id.

    Events accepted late (their timestamp in this period, after it closed) raise a meter's
    quantity above what was billed; the next charge or invoice bills the difference once and
    moves ``quantities`` up to what it billed (see ``billing``). ``checked_at`` is when late
    events were last looked for."""

    subscription = models.ForeignKey(UsageSubscription, on_delete=models.CASCADE, related_name="billed_periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    quantities = models.JSONField(default=dict)  # {"mtr_…": "250"}
    checked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period_start"], name="metering_billed_period_once"),
        ]


class UsageAdjustment(models.Model):
    """Late usage of a closed period, billed in a later period: on a live subscription it is
    accrued into the period ``billed_in`` (charged with its next charge); on an arrears one it
    is a line of that period's invoice."""

    subscription = models.ForeignKey(UsageSubscription, on_delete=models.CASCADE, related_name="adjustments")
    period_start = models.DateTimeField()  # the late period
    billed_in = models.DateTimeField()  # the start of the period whose charge or invoice bills it
    meter_key = models.CharField(max_length=64)
    meter_name = models.CharField(max_length=120)
    quantity = models.DecimalField(max_digits=30, decimal_places=6)  # added to the period's quantity
    exact = models.DecimalField(**PRICE_DIGITS)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["subscription", "billed_in"])]


class UsageEvent(models.Model):
    """One usage event as the integrator sent it. ``event_id`` is theirs, unique per store."""

    id = models.BigAutoField(primary_key=True)
    # No index of their own: (store, event_id) and (customer, name, timestamp) begin with them, and
    # each index is one more B-tree written for every event.
    store = models.ForeignKey(Store, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                              related_name="+")
    event_id = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False,
                                 related_name="+")
    name = models.CharField(max_length=120)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "event_id"], name="metering_event_unique_id")]
        # A customer's meter over a period reads one range of this index.
        indexes = [models.Index(fields=["customer", "name", "timestamp"], name="metering_event_usage")]


class UsageRollup(models.Model):
    """One meter's events of one customer in one UTC hour, aggregated as they are accepted (see
    ``rollups``): a month is ~744 of these rows, not a million events. Only what the meter's
    aggregation needs is filled: ``count`` always, ``total`` for sum, ``peak`` for max, the
    ``latest_*`` triple (the event's timestamp and row id break ties) for latest."""

    id = models.BigAutoField(primary_key=True)
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+")
    customer_id = models.CharField(max_length=40)
    bucket = models.DateTimeField()  # the hour's start
    count = models.BigIntegerField(default=0)
    total = models.DecimalField(max_digits=40, decimal_places=6, default=0)
    peak = models.DecimalField(max_digits=40, decimal_places=6, null=True)
    latest_at = models.DateTimeField(null=True)
    latest_event = models.BigIntegerField(null=True)
    latest = models.DecimalField(max_digits=40, decimal_places=6, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meter", "customer_id", "bucket"], name="metering_rollup_one_per_hour"),
        ]


class UsageDistinct(models.Model):
    """For a unique_count meter: each value of its property a customer sent in one UTC day (a
    long value is kept as its SHA-256). A month's count is COUNT(DISTINCT value) over ≤ 31 days."""

    id = models.BigAutoField(primary_key=True)
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+")
    customer_id = models.CharField(max_length=40)
    bucket = models.DateTimeField()  # the day's start
    value = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meter", "customer_id", "bucket", "value"],
                                    name="metering_distinct_once_per_day"),
        ]


class UsageDistinctHour(models.Model):
    """The same as ``UsageDistinct`` per UTC hour: a range that does not start or end at midnight
    reads its whole days from ``UsageDistinct``, the whole hours of its partial days from here,
    and only the events of its partial hours themselves."""

    id = models.BigAutoField(primary_key=True)
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="+")
    customer_id = models.CharField(max_length=40)
    bucket = models.DateTimeField()  # the hour's start
    value = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["meter", "customer_id", "bucket", "value"],
                                    name="metering_distinct_once_per_hour"),
        ]

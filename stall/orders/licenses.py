"""License keys: one per unit of a product that issues them, with an activation limit and an
optional expiry, checked by the software it unlocks through a public API.

Issuing. A product's ``LicensePolicy`` says a paid order of it issues keys, in the creator's
format. A checkout paid by card makes its order from lines loaded with their products' policies
(one JOIN more, no statement more) and issues from them (``license_keys_for_lines``); the lean
wallet and tab spend runs an order-paid observer (``license_keys_issue``) whose EXISTS column, read
in the spend's one SELECT, says whether the store has any such product at all.

Checking. The software sends the key (``license_activate``, ``license_validate``,
``license_deactivate``); the key is found by its SHA-256 (a unique index, with the instance asked
about in the same SELECT) and compared with ``hmac.compare_digest``. Rate limits: every call counts
against its key; a client address counts its calls with unknown keys (guesses), and once it
has used up its limit every call from it is refused, valid keys too, so a guesser learns nothing
more. Counting an address's valid calls too would double the cost of the call software makes on
every start and stop nothing the per-key limit does not.
Activations count in ``LicenseKey.activations_used``, changed only by a guarded UPDATE (``…
WHERE activations_used < activation_limit``), so simultaneous activations of a key at its limit
never pass it.

Refunds disable the keys of a fully refunded order (``license_order_refunded``, registered with
the refunds); a chargeback disables them while it is open or lost and enables them again when the
store wins it (``license_order_disputed``, registered with the disputes); the creator can disable, re-enable, reset the activations and raise the limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from stall.core.api import timestamp
from stall.core.errors import InvalidRequest, NotFound, StallError
from stall.core.limits import limits_check, limits_hit
from stall.core.money import amount_validate
from stall.integrations.webhooks import EventRow

from .models import (
    DisputeState,
    LicenseActivation,
    LicenseKey,
    LicensePolicy,
    LicenseStatus,
    Order,
    OrderStatus,
)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MIN_RANDOM = 20  # characters of 5 bits: 100 random bits
DEFAULT_FORMAT = "#####-#####-#####-#####-#####"


class LicenseInvalid(InvalidRequest):
    code = "license_invalid"


class LicenseKeyNotFound(StallError):
    code = "license_key_invalid"
    status = 404
    default_message = gettext_noop("No license has this key.")


class LicenseLimitReached(StallError):
    code = "activation_limit_reached"
    status = 403
    default_message = gettext_noop("This license key has reached its activation limit.")


class LicenseDisabled(StallError):
    code = "license_disabled"
    status = 403
    default_message = gettext_noop("This license key has been disabled.")


class LicenseExpired(StallError):
    code = "license_expired"
    status = 403
    default_message = gettext_noop("This license key has expired.")


class LicenseInstanceNotFound(StallError):
    code = "instance_invalid"
    status = 404
    default_message = gettext_noop("This license key has no active instance with that id.")


# --- the creator's settings ----------------------------------------------------------------------


def key_format_check(key_format: str) -> str:
    key_format = (key_format or "").strip() or DEFAULT_FORMAT
    if len(key_format) > 80:
        raise LicenseInvalid("Keep the key format under 80 characters.", param="key_format")
    if key_format.count("#") < MIN_RANDOM:
        raise LicenseInvalid(
            f"A key format needs at least {MIN_RANDOM} # (random characters), so keys cannot be guessed.",
            param="key_format",
        )
    if any(not (ch.isascii() and (ch.isalnum() or ch in "-_.#")) for ch in key_format):
        raise LicenseInvalid("Use letters, digits, dashes, dots, underscores and # in the key format.", param="key_format")
    return key_format


@transaction.atomic
def license_policy_set(*, product, enabled: bool, key_format: str = DEFAULT_FORMAT, activation_limit: int | None = None,
                       valid_days: int | None = None, extra_seat_amount: int | None = None) -> LicensePolicy:
    """Make ``product`` issue a license key per unit bought (or stop). Applies to orders from now on.
    ``extra_seat_amount``: the price of a paid extra seat past the limit (orders.license_seats)."""
    key_format = key_format_check(key_format)
    if activation_limit is not None and activation_limit < 1:
        raise LicenseInvalid("An activation limit is at least 1 (leave it empty for no limit).", param="activation_limit")
    if valid_days is not None and valid_days < 1:
        raise LicenseInvalid("Keys stay valid at least 1 day (leave it empty for no expiry).", param="valid_days")
    if extra_seat_amount is not None:
        amount_validate(extra_seat_amount, param="extra_seat_amount", allow_zero=False)
        if activation_limit is None:
            raise LicenseInvalid("Extra seats are sold past an activation limit: set one first.", param="extra_seat_amount")
    policy, _ = LicensePolicy.objects.update_or_create(
        product=product,
        defaults={"store_id": product.store_id, "enabled": enabled, "key_format": key_format,
                  "activation_limit": activation_limit, "valid_days": valid_days,
                  "extra_seat_amount": extra_seat_amount},
    )
    return policy


def key_make(key_format: str) -> str:
    return "".join(secrets.choice(ALPHABET) if ch == "#" else ch for ch in key_format)


def key_hash(key: str) -> str:
    return hashlib.sha256((key or "").strip().upper().encode("utf-8", "surrogatepass")).hexdigest()


# --- issuing -------------------------------------------------------------------------------------

# For the lean spend's one SELECT: does the store have a product issuing keys at all?
POLICY_SQL = "EXISTS (SELECT 1 FROM orders_licensepolicy lp WHERE lp.store_id = %s AND lp.enabled)"


def license_keys_issue(*, order: Order, paid, context=None, read=None) -> list[EventRow]:
    """An order-paid observer, for the lean spend: ``read`` is its EXISTS column. (The card path,
    where ``read`` is None, issues from the lines it loaded: ``license_keys_for_lines``.) An extra
    seat's order (``orders.license_seats``) is of the key's product but issues no key."""
    if not read or (context or {}).get("license_seat"):
        return []
    product_ids = [line.product_id for line in paid]
    policies = {p.product_id: p for p in LicensePolicy.objects.filter(product_id__in=product_ids, enabled=True)}
    quantities = {ln.product_id: ln.quantity for ln in order.lines.all()}
    return _issue(order, [(pid, quantities.get(pid, 1), policy) for pid, policy in policies.items()])


def license_keys_for_lines(*, order: Order, lines) -> list[EventRow]:
    """Issue the keys of a checkout's lines, loaded with ``product__license_policy`` (no query when
    none of their products issues keys)."""
    issuing = []
    for line in lines:
        policy = getattr(line.product, "license_policy", None)
        if policy is not None and policy.enabled:
            issuing.append((line.product_id, line.quantity, policy))
    return _issue(order, issuing)


def _issue(order: Order, issuing: list) -> list[EventRow]:
    if not issuing:
        return []
    now = timezone.now()
    keys = []
    for product_id, quantity, policy in issuing:
        for _ in range(quantity):
            key = key_make(policy.key_format)
            keys.append(LicenseKey(
                store_id=order.store_id, order_id=order.pk, product_id=product_id, email=order.email, key=key,
                key_hash=key_hash(key), activation_limit=policy.activation_limit,
                expires_at=now + timedelta(days=policy.valid_days) if policy.valid_days else None,
            ))
    LicenseKey.objects.bulk_create(keys)
    return [EventRow("license_key.created", license_out(k, activations=[])) for k in keys]


# --- the public API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A key as the checks read it, with its product's name, in one query."""

    id: str
    store_id: str
    key_hash: str
    status: str
    activation_limit: int | None
    activations_used: int
    expires_at: datetime | None
    product_id: str
    product_name: str
    email: str
    order_id: str
    created_at: datetime


_FIND_SQL = (
    "SELECT k.id, k.store_id, k.key_hash, k.status, k.activation_limit, k.activations_used, k.expires_at, "
    "k.product_id, p.name, k.email, k.order_id, k.created_at, a.id, a.name, a.created_at FROM orders_licensekey k "
    "JOIN catalog_product p ON p.id = k.product_id LEFT JOIN orders_licenseactivation a ON a.id = %s "
    "AND a.license_id = k.id AND a.deactivated_at IS NULL WHERE k.key_hash = %s"
)


def license_find(*, key: str, address: str = "", instance_id: str = "") -> tuple[Found, dict | None]:
    """The key (rate limited, see the module's docstring) and, with ``instance_id``, that live
    instance of it, in one SELECT."""
    digest = key_hash(key)
    limits_hit(("license_key", digest), what="requests")
    if address:
        limits_check(("license_address", address), what="requests")
    with connection.cursor() as cursor:
        cursor.execute(_FIND_SQL, [instance_id or "", digest])
        row = cursor.fetchone()
    if row is None or not hmac.compare_digest(row[2], digest):
        if address:
            limits_hit(("license_address", address), what="requests")
        raise LicenseKeyNotFound(param="license_key")
    instance = {"id": row[12], "name": row[13], "created_at": row[14]} if row[12] else None
    return Found(*row[:6], _aware(row[6]), row[7], row[8], row[9], row[10], _aware(row[11])), instance


def _aware(value):
    """A time read by raw SQL: SQLite gives it naive (UTC) or as text, PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _refusal(found: Found, now) -> StallError | None:
    if found.status == LicenseStatus.DISABLED:
        return LicenseDisabled(param="license_key")
    if found.expires_at is not None and found.expires_at <= now:
        return LicenseExpired(param="license_key")
    return None


def license_validate(*, key: str, instance_id: str | None = None, address: str = "") -> dict:
    """Is the key good now (and, with ``instance_id``, is that instance one of its activations)?
    Answers for any key that exists, valid or not; an unknown key is ``license_key_invalid``."""
    found, instance = license_find(key=key, address=address, instance_id=instance_id or "")
    now = timezone.now()
    refusal = _refusal(found, now)
    if instance_id:
        if instance is None and refusal is None:
            refusal = LicenseInstanceNotFound(param="instance_id")
    return {
        "valid": refusal is None,
        "error": refusal.as_dict()["error"] if refusal is not None else None,
        "license_key": _key_out(found, now),
        "instance": _instance_out(instance) if instance else None,
    }


def license_activate(*, key: str, instance_name: str, address: str = "", over_limit=None) -> dict:
    """Activate the key on a new instance; refused at the limit (``activation_limit_reached``),
    when disabled or expired. Simultaneous activations at the limit: one guarded UPDATE each, so
    no more succeed than the limit allows.

    ``over_limit(found, instance_name)``, when given, is asked at the limit instead of refusing: it
    returns ``(instance, charged)`` for an activation it made in a seat it added (a paid extra seat,
    ``orders.license_seats``), None when a seat came free meanwhile (tried again once), or raises."""
    instance_name = (instance_name or "").strip()
    if not instance_name or len(instance_name) > 200 or "\x00" in instance_name:
        raise LicenseInvalid("Name the instance (1 to 200 characters).", param="instance_name")
    found, _ = license_find(key=key, address=address)
    now = timezone.now()
    refusal = _refusal(found, now)
    if refusal is not None:
        raise refusal
    charged = None
    for _attempt in range(2):
        with transaction.atomic():
            took = LicenseKey.objects.filter(pk=found.id, status=LicenseStatus.ACTIVE).filter(
                Q(activation_limit__isnull=True) | Q(activations_used__lt=F("activation_limit"))
            ).update(activations_used=F("activations_used") + 1)
            if took:
                instance = LicenseActivation.objects.create(license_id=found.id, name=instance_name)
                found = Found(**{**found.__dict__, "activations_used": found.activations_used + 1})
                break
        current = LicenseKey.objects.get(pk=found.id)
        if current.status == LicenseStatus.DISABLED:
            raise LicenseDisabled(param="license_key")
        if over_limit is None:
            raise LicenseLimitReached(param="license_key")
        bought = over_limit(found, instance_name)
        if bought is not None:
            instance, charged = bought
            current.refresh_from_db(fields=["activations_used", "activation_limit"])
            found = Found(**{**found.__dict__, "activations_used": current.activations_used,
                             "activation_limit": current.activation_limit})
            break
    else:
        raise LicenseLimitReached(param="license_key")
    return {
        "activated": True, "license_key": _key_out(found, now),
        "instance": _instance_out({"id": instance.pk, "name": instance.name, "created_at": instance.created_at}),
        "charged": charged,
    }


def license_deactivate(*, key: str, instance_id: str, address: str = "") -> dict:
    """Free one activation of the key. An unknown or already deactivated instance is ``instance_invalid``."""
    found, _ = license_find(key=key, address=address)
    with transaction.atomic():
        gone = LicenseActivation.objects.filter(
            pk=instance_id or "", license_id=found.id, deactivated_at__isnull=True
        ).update(deactivated_at=timezone.now())
        if not gone:
            raise LicenseInstanceNotFound(param="instance_id")
        LicenseKey.objects.filter(pk=found.id, activations_used__gt=0).update(activations_used=F("activations_used") - 1)
    used = LicenseKey.objects.filter(pk=found.id).values_list("activations_used", flat=True).get()
    found = Found(**{**found.__dict__, "activations_used": used})
    return {"deactivated": True, "license_key": _key_out(found, timezone.now())}


def _key_out(found: Found, now) -> dict:
    refusal = _refusal(found, now)
    status = "disabled" if isinstance(refusal, LicenseDisabled) else "expired" if isinstance(refusal, LicenseExpired) else "active"
    return {
        "id": found.id,
        "status": status,
        "product": {"id": found.product_id, "name": found.product_name},
        "customer_email": found.email,
        "order": found.order_id,
        "activation_limit": found.activation_limit,
        "activations_used": found.activations_used,
        "expires_at": timestamp(found.expires_at),
        "created": timestamp(found.created_at),
    }


def _instance_out(instance: dict) -> dict:
    return {"id": instance["id"], "name": instance["name"], "created": timestamp(_aware(instance["created_at"]))}


# --- the creator's actions -----------------------------------------------------------------------


def license_get(*, store, license_id: str) -> LicenseKey:
    found = LicenseKey.objects.filter(store=store, pk=license_id).select_related("product").first()
    if found is None:
        raise NotFound("No such license key.")
    return found


@transaction.atomic
def license_disable(*, store, license_id: str, reason: str = "creator") -> LicenseKey:
    lic = license_get(store=store, license_id=license_id)
    LicenseKey.objects.filter(pk=lic.pk).update(status=LicenseStatus.DISABLED, disabled_reason=reason[:40])
    lic.refresh_from_db()
    return lic


@transaction.atomic
def license_enable(*, store, license_id: str) -> LicenseKey:
    lic = license_get(store=store, license_id=license_id)
    order_status, dispute_state = Order.objects.filter(pk=lic.order_id).values_list("status", "dispute_state").get()
    if order_status == OrderStatus.REFUNDED:
        raise LicenseInvalid("This key's order was refunded: it stays disabled.", param="id")
    if dispute_state in (DisputeState.OPEN, DisputeState.LOST):
        raise LicenseInvalid("This key's order is disputed by the cardholder: it stays disabled.", param="id")
    LicenseKey.objects.filter(pk=lic.pk).update(status=LicenseStatus.ACTIVE, disabled_reason="")
    lic.refresh_from_db()
    return lic


@transaction.atomic
def license_activations_reset(*, store, license_id: str) -> LicenseKey:
    """Free every activation of the key (the customer's old machines are gone)."""
    lic = license_get(store=store, license_id=license_id)
    LicenseActivation.objects.filter(license=lic, deactivated_at__isnull=True).update(deactivated_at=timezone.now())
    LicenseKey.objects.filter(pk=lic.pk).update(activations_used=0)
    lic.refresh_from_db()
    return lic


@transaction.atomic
def license_limit_raise(*, store, license_id: str, activation_limit: int | None) -> LicenseKey:
    """Give one customer's key more activations (None: unlimited); never fewer than it uses."""
    lic = license_get(store=store, license_id=license_id)
    if activation_limit is not None and activation_limit < max(lic.activations_used, 1):
        raise LicenseInvalid(
            f"The key has {lic.activations_used} activation(s); the limit cannot go below that.", param="activation_limit"
        )
    LicenseKey.objects.filter(pk=lic.pk).update(activation_limit=activation_limit)
    lic.refresh_from_db()
    return lic


def license_order_refunded(*, order, refund, refunded_before: int = 0) -> None:
    """A fully refunded order disables its keys (registered with the refunds)."""
    if order.status == OrderStatus.REFUNDED:
        LicenseKey.objects.filter(order=order, status=LicenseStatus.ACTIVE).update(
            status=LicenseStatus.DISABLED, disabled_reason="refunded"
        )


def license_order_disputed(*, order, dispute, change) -> None:
    """A chargeback disables the order's keys while it is open or lost; won (or an inquiry closed),
    the keys it disabled work again (registered with the disputes)."""
    if order.dispute_state in (DisputeState.OPEN, DisputeState.LOST):
        LicenseKey.objects.filter(order=order, status=LicenseStatus.ACTIVE).update(
            status=LicenseStatus.DISABLED, disabled_reason="disputed"
        )
    elif order.status != OrderStatus.REFUNDED:
        LicenseKey.objects.filter(order=order, status=LicenseStatus.DISABLED, disabled_reason="disputed").update(
            status=LicenseStatus.ACTIVE, disabled_reason=""
        )


def licenses_for_order(*, order) -> list[LicenseKey]:
    return list(order.license_keys.select_related("product").prefetch_related("activations").order_by("pk"))


def licenses_for_email(*, email: str) -> list[LicenseKey]:
    return list(LicenseKey.objects.filter(email__iexact=email).select_related("product", "store").order_by("-pk"))


def license_out(lic: LicenseKey, activations=None) -> dict:
    acts = activations if activations is not None else [a for a in lic.activations.all() if a.deactivated_at is None]
    return {
        "id": lic.pk, "object": "license_key", "key": lic.key, "status": lic.status, "product": lic.product_id,
        "order": lic.order_id, "customer_email": lic.email, "activation_limit": lic.activation_limit,
        "activations_used": lic.activations_used, "expires_at": timestamp(lic.expires_at),
        "instances": [{"id": a.pk, "name": a.name, "created": timestamp(a.created_at)} for a in acts],
    }

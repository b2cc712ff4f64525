"""Paid extra seats for license keys (issue #11): an activation past a key's limit buys one more
seat from the buyer's wallet or tab, when the creator sells extra seats
(``LicensePolicy.extra_seat_amount``) and the buyer allowed it for that key on their library page.

The public activate call is authenticated by the key alone, so nothing in it can consent to a
charge: the buyer's standing consent (``LicenseSeatConsent``: which key, wallet or tab, at most N
extra seats, revocable) is what lets it charge. Without one, the call is refused as before, with
a message saying how to allow it.

A seat is bought in one transaction: the lean spend (``orders.spend``: the guarded debit, the
order, the transfers) and, in its ``after_order``, one guarded UPDATE of the key that adds the
seat and takes it (``… WHERE status = active AND extra_seats < cap AND activations_used >=
activation_limit``) plus the activation and the LicenseSeat row. When that UPDATE finds nothing
to do (a seat was freed meanwhile, or the cap was reached by a simultaneous call), the whole
transaction is rolled back: no charge without its seat, and no seat charged twice. Two calls
past the limit at once buy two seats for two instances, never one seat twice: the wallet's (or
tab's) guarded debit and the key's row lock put them one after the other.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_noop

from stall.core.errors import InvalidRequest, NotFound

from .licenses import Found, LicenseDisabled, LicenseLimitReached, license_activate
from .models import (
    LicenseActivation,
    LicenseKey,
    LicensePolicy,
    LicenseSeat,
    LicenseSeatConsent,
    LicenseStatus,
    Order,
    OrderStatus,
)
from .spend import IN_LEDGER_METHODS, SpendLine, order_spend, spend_read

MAX_EXTRA_SEATS = 100
SEAT_KIND = "license_seat"  # the spend line's kind: no fulfilment handler, no entitlement


class SeatConsentInvalid(InvalidRequest):
    code = "invalid_seat_consent"


class SeatLimitReached(LicenseLimitReached):
    default_message = gettext_noop(
        "This license key has reached its activation limit and the most extra seats its owner allowed."
    )


class SeatsNotAllowed(LicenseLimitReached):
    default_message = gettext_noop(
        "This license key has reached its activation limit. Its owner can allow paid extra seats for it on "
        "their library page, or deactivate an instance."
    )


class _SeatNotNeeded(Exception):
    """The key's row changed between the refusal and the purchase: roll the purchase back."""


# --- the buyer's consent (library page) ---------------------------------------------------------


def _own_license(*, buyer, license_id: str) -> LicenseKey:
    found = LicenseKey.objects.filter(pk=license_id or "", email__iexact=buyer.email).select_related("product").first()
    if found is None:
        raise NotFound(gettext_noop("No such license key."))
    return found


@transaction.atomic
def license_seat_consent_set(*, buyer, license_id: str, method: str, max_extra_seats) -> LicenseSeatConsent:
    """Allow activations of the buyer's key past its limit to buy a seat each from their wallet or
    tab, up to ``max_extra_seats`` (1 to 100) in all. Saving again changes the terms."""
    lic = _own_license(buyer=buyer, license_id=license_id)
    price = LicensePolicy.objects.filter(product_id=lic.product_id).values_list("extra_seat_amount", flat=True).first()
    if not price:
        raise SeatConsentInvalid(gettext_noop("The creator does not sell extra seats for this product."), param="license")
    if lic.status != LicenseStatus.ACTIVE:
        raise SeatConsentInvalid(gettext_noop("This license key is disabled."), param="license")
    if method not in IN_LEDGER_METHODS:
        raise SeatConsentInvalid(gettext_noop("Choose your wallet or your tab."), param="method")
    if isinstance(max_extra_seats, bool) or not isinstance(max_extra_seats, int) or not 1 <= max_extra_seats <= MAX_EXTRA_SEATS:
        raise SeatConsentInvalid(gettext_noop("Allow from 1 to 100 extra seats."), param="max_extra_seats")
    consent, _ = LicenseSeatConsent.objects.update_or_create(
        license=lic, defaults={"buyer": buyer, "method": method, "max_extra_seats": max_extra_seats, "revoked_at": None},
    )
    return consent


@transaction.atomic
def license_seat_consent_revoke(*, buyer, license_id: str) -> None:
    """No more paid seats for this key; the seats bought stay."""
    lic = _own_license(buyer=buyer, license_id=license_id)
    LicenseSeatConsent.objects.filter(license=lic, revoked_at__isnull=True).update(revoked_at=timezone.now())


def seat_offers_for_email(*, email: str) -> dict[str, dict]:
    """For the library page: by key id, the extra seat's price and the buyer's consent (or None),
    for the keys whose product sells extra seats."""
    keys = LicenseKey.objects.filter(email__iexact=email, product__license_policy__extra_seat_amount__isnull=False).values_list(
        "pk", "product__license_policy__extra_seat_amount", "product__currency", "extra_seats",
    )
    consents = {c.license_id: c for c in LicenseSeatConsent.objects.filter(license__email__iexact=email, revoked_at__isnull=True)}
    return {
        pk: {"amount": amount, "currency": currency, "extra_seats": extra, "consent": consents.get(pk)}
        for pk, amount, currency, extra in keys
    }


# --- the purchase (from license_activate) -------------------------------------------------------


def license_activate_or_buy_seat(*, key: str, instance_name: str, address: str = "") -> dict:
    """``license_activate``, buying a paid extra seat at the limit when the buyer allowed it."""
    return license_activate(key=key, instance_name=instance_name, address=address, over_limit=_seat_buy)


def _seat_buy(found: Found, instance_name: str):
    bought = license_seat_buy(found=found, instance_name=instance_name)
    if bought is None:
        return None
    instance, order = bought
    return instance, seat_charged_out(order)


def license_seat_buy(*, found: Found, instance_name: str) -> tuple[LicenseActivation, Order] | None:
    """Buy one seat for ``instance_name`` on a key at its limit and activate it. None when a seat
    came free meanwhile (the caller activates in it). Raises SeatsNotAllowed without the buyer's
    consent or a price, SeatLimitReached at the consent's cap, and the wallet's or tab's refusals."""
    consent = LicenseSeatConsent.objects.filter(license_id=found.id, revoked_at__isnull=True).select_related("buyer").first()
    row = LicensePolicy.objects.filter(product_id=found.product_id).values_list("extra_seat_amount", "product__currency").first()
    price, currency = row if row is not None else (None, "")
    if not price:
        raise LicenseLimitReached(param="license_key")  # the creator sells no extra seats
    if consent is None:
        raise SeatsNotAllowed(param="license_key")
    if LicenseKey.objects.filter(pk=found.id, extra_seats__gte=consent.max_extra_seats).exists():
        raise SeatLimitReached(param="license_key")
    made = {}

    def seat_take(order: Order) -> list:
        took = LicenseKey.objects.filter(
            pk=found.id, status=LicenseStatus.ACTIVE, extra_seats__lt=consent.max_extra_seats,
            activation_limit__isnull=False, activations_used__gte=F("activation_limit"),
        ).update(
            activation_limit=F("activation_limit") + 1, extra_seats=F("extra_seats") + 1,
            activations_used=F("activations_used") + 1,
        )
        if not took:
            raise _SeatNotNeeded()
        instance = LicenseActivation.objects.create(license_id=found.id, name=instance_name)
        LicenseSeat.objects.create(license_id=found.id, order=order, instance=instance, amount=price)
        made["instance"] = instance
        return []

    try:
        with transaction.atomic():
            read = spend_read(buyer=consent.buyer, store_id=found.store_id, currency=currency)
            line = SpendLine(
                product_id=found.product_id, name=f"Extra seat: {found.product_name}"[:120], unit_amount=price,
                kind=SEAT_KIND, download_limit=1,
            )
            order = order_spend(
                store_id=found.store_id, buyer=consent.buyer, method=consent.method, currency=currency, lines=[line],
                read=read, context={"license_seat": True}, after_order=seat_take,
            )
    except _SeatNotNeeded:
        current = LicenseKey.objects.filter(pk=found.id).values_list("status", "extra_seats", "activations_used", "activation_limit").get()
        status, extra, used, limit = current
        if status != LicenseStatus.ACTIVE:
            raise LicenseDisabled(param="license_key") from None
        if limit is not None and used >= limit and extra >= consent.max_extra_seats:
            raise SeatLimitReached(param="license_key") from None
        return None
    return made["instance"], order


def license_seat_order_refunded(*, order, refund, refunded_before: int = 0) -> None:
    """A seat's order refunded in full gives the seat up: the key's limit goes down by one and the
    seat's instance is deactivated (or, if it was already, the newest one over the limit). The
    license's own order refunded in full ends the buyer's consent (its keys are disabled anyway).
    Registered with the refunds."""
    if order.status != OrderStatus.REFUNDED:
        return
    LicenseSeatConsent.objects.filter(license__order=order, revoked_at__isnull=True).update(revoked_at=timezone.now())
    seat = LicenseSeat.objects.select_for_update().filter(order=order, released_at__isnull=True).first()
    if seat is None:
        return
    now = timezone.now()
    LicenseSeat.objects.filter(pk=seat.pk).update(released_at=now)
    lic = LicenseKey.objects.select_for_update().get(pk=seat.license_id)
    live = LicenseActivation.objects.filter(license=lic, deactivated_at__isnull=True)
    used, limit = lic.activations_used, max((lic.activation_limit or 1) - 1, 0)
    if live.filter(pk=seat.instance_id).exists():
        live.filter(pk=seat.instance_id).update(deactivated_at=now)
        used -= 1
    while used > limit:
        newest = live.exclude(pk=seat.instance_id).order_by("-created_at", "-pk").first()
        if newest is None:
            break
        LicenseActivation.objects.filter(pk=newest.pk).update(deactivated_at=now)
        used -= 1
    LicenseKey.objects.filter(pk=lic.pk).update(activation_limit=limit, extra_seats=F("extra_seats") - 1, activations_used=max(used, 0))


def seat_charged_out(order: Order) -> dict:
    return {"amount": order.amount_total, "currency": order.currency, "order": order.pk}


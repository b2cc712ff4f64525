"""Gift cards: issued by a purchase or by hand, emailed to a recipient, redeemed into a wallet.

Money. A card's value sits in the store's gift card liability account (a credit-balance account:
it can never go below zero) from issue until redemption. A card bought in the store is paid like
any product — the sale lands in the store's balance — and its fulfilment moves the face value on
to the liability, so the store keeps only the fees it paid. A card issued by hand (a giveaway,
credit instead of a refund) is funded from the store's balance the same way. Redeeming moves the
whole balance from the liability into the redeemer's wallet in the store's currency, where it is
spent a few cents at a time on anything; voiding an unredeemed card moves it back to the store.

Codes. 20 characters of Crockford's base32 (100 random bits) in groups of four. Only the code's
SHA-256 is kept (until the email carrying it is sent, see ``GiftCard.pending_code``): a redemption
looks the card up by the hash of what was typed and compares the hashes with
``hmac.compare_digest``, and attempts are rate limited per buyer and per client address, so
codes can be neither read from the database nor guessed. Another store's card answers exactly
as a wrong code does.

Simultaneous redemptions of one card: the guarded UPDATE (``status = 'active' AND balance = …``)
lets exactly one through; the others find it redeemed and move nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_noop

from stall.core.api import timestamp
from stall.core.errors import InvalidRequest, NotFound
from stall.core.limits import limits_hit
from stall.core.money import amount_validate, currency_normalize
from stall.integrations.webhooks import EventRow, event_emit
from stall.ledger.models import AccountKind, ledger_owner
from stall.ledger.selectors import account_balance
from stall.ledger.services import account_open, transfer_create
from stall.payments.rails.wallet import wallet_for, wallet_mode_for_credit

from .models import GiftCard, GiftCardEvent, GiftCardPurchase, GiftCardStatus
from .tasks import gift_card_email_send

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
CODE_LENGTH = 20
MESSAGE_MAX = 1000


class GiftCardError(InvalidRequest):
    code = "gift_card_invalid"


class GiftCardCodeInvalid(GiftCardError):
    code = "gift_card_code_invalid"
    default_message = gettext_noop("No gift card of this store has that code. Check it and try again.")


class GiftCardUsedUp(GiftCardError):
    code = "gift_card_used_up"
    default_message = gettext_noop("This gift card has already been redeemed.")


class GiftCardExpired(GiftCardError):
    code = "gift_card_expired"
    default_message = gettext_noop("This gift card has expired.")


class GiftCardDisabled(GiftCardError):
    code = "gift_card_disabled"
    default_message = gettext_noop("This gift card has been cancelled by the store.")


class GiftCardTestMoney(GiftCardError):
    code = "gift_card_test_money"
    default_message = gettext_noop(
        "This gift card was bought with a test card and your wallet holds real money: it cannot be redeemed into it."
    )


class GiftCardNotFound(NotFound):
    default_message = gettext_noop("No such gift card.")


# --- codes ---------------------------------------------------------------------------------------


def code_generate() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def code_normalize(code: str) -> str:
    """What the buyer typed, as the card's code: case, spaces and dashes ignored; O read as 0, I
    and L as 1 (Crockford's rule, so a code copied by eye from an email still works)."""
    cleaned = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    return cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def code_hash(code: str) -> str:
    return hashlib.sha256(code_normalize(code).encode()).hexdigest()


# --- accounts ------------------------------------------------------------------------------------


def _liability(store_id: str, currency: str, livemode: bool):
    return account_open(kind=AccountKind.GIFT_CARD_LIABILITY, owner=ledger_owner(store_id, livemode=livemode), currency=currency)


def _store_balance(store_id: str, currency: str, livemode: bool):
    return account_open(kind=AccountKind.STORE_BALANCE, owner=ledger_owner(store_id, livemode=livemode), currency=currency)


def gift_card_liability(*, store) -> int:
    """What the store's unredeemed gift cards (bought with real money or given) are worth."""
    owner = ledger_owner(store.pk, livemode=True)
    return account_balance(kind=AccountKind.GIFT_CARD_LIABILITY, owner=owner, currency=store.currency).amount


# --- issuing -------------------------------------------------------------------------------------


def _event(card: GiftCard, kind: str, amount: int = 0, note: str = "") -> None:
    GiftCardEvent.objects.create(card=card, kind=kind, amount=amount, note=note[:255])


def _email_clean(value: str | None, *, param: str) -> str:
    value = (value or "").strip()
    if value:
        try:
            validate_email(value)
        except ValidationError:
            raise GiftCardError(gettext_noop("Enter a valid email address."), param=param) from None
    return value


def _clean_text(value: str, limit: int) -> str:
    return (value or "").strip()[:limit]


@transaction.atomic
def gift_card_issue(
    *, store, amount: int, recipient_email: str = "", recipient_name: str = "", sender_name: str = "",
    message: str = "", send_at: datetime | None = None, expires_at: datetime | None = None, order=None,
    purchaser_email: str = "", livemode: bool = True, note: str = "",
) -> tuple[GiftCard, str]:
    """Issue a card worth ``amount`` of the store's currency, funded from the store's balance (a
    purchase's fulfilment, or the creator's giveaway). Returns the card and its code, which is
    shown this once and emailed to ``recipient_email`` (at ``send_at`` when that is later)."""
    amount_validate(amount, allow_zero=False)
    message = (message or "").strip()
    if len(message) > MESSAGE_MAX:
        raise GiftCardError(f"Keep the message under {MESSAGE_MAX} characters.", param="message")
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise GiftCardError(gettext_noop("Choose an expiry date in the future."), param="expires_at")
    recipient_email = _email_clean(recipient_email, param="recipient_email")
    currency = currency_normalize(store.currency)
    code = code_generate()
    card = GiftCard.objects.create(
        store=store, code_hash=code_hash(code), code_last4=code[-4:], pending_code=code if recipient_email else "",
        currency=currency, initial_amount=amount, balance=amount, livemode=livemode, expires_at=expires_at,
        order=order, purchaser_email=purchaser_email, sender_name=_clean_text(sender_name, 120),
        recipient_email=(recipient_email or "").strip(), recipient_name=_clean_text(recipient_name, 120),
        message=message, send_at=send_at if send_at and send_at > now else None,
    )
    transfer_create(
        idempotency_key=f"{card.pk}:issue", debit_account=_store_balance(store.pk, currency, livemode),
        credit_account=_liability(store.pk, currency, livemode), amount=amount, code="gift_card_issued",
        reference=order.pk if order is not None else card.pk,
    )
    _event(card, "issued", amount, note or ("bought in order " + order.pk if order is not None else "issued by the store"))
    if card.recipient_email:
        card_id, eta = card.pk, card.send_at

        def deliver() -> None:
            if eta is None:
                gift_card_email_send(card_id)
            else:
                gift_card_email_send.schedule(args=(card_id,), eta=eta)

        transaction.on_commit(deliver)
    return card, code


def gift_card_fulfil(*, order, lines, context=None) -> list[EventRow]:
    """A paid order of gift card products: one card per unit, for the recipient the buyer named at
    checkout (``GiftCardPurchase``), or for the buyer when they named nobody."""
    purchase = GiftCardPurchase.objects.filter(checkout_id=order.checkout_id).first() if order.checkout_id else None
    events = []
    for line in lines:
        if line.unit_amount <= 0:
            continue  # a card worth nothing is no card (the gift card page asks for more than 0)
        for _ in range(line.quantity):
            card, _code = gift_card_issue(
                store=order.store, amount=line.unit_amount, order=order, purchaser_email=order.email,
                recipient_email=purchase.recipient_email if purchase else order.email,
                recipient_name=purchase.recipient_name if purchase else "",
                sender_name=purchase.sender_name if purchase else "",
                message=purchase.message if purchase else "",
                send_at=purchase.send_at if purchase else None, livemode=order.livemode,
            )
            events.append(EventRow("gift_card.issued", gift_card_out(card)))
    return events


def gift_card_purchase_note(*, checkout, recipient_email: str, recipient_name: str = "", sender_name: str = "",
                            message: str = "", send_at: datetime | None = None) -> GiftCardPurchase:
    """Remember who the gift card in ``checkout`` is for, until its order issues it."""
    message = (message or "").strip()
    if len(message) > MESSAGE_MAX:
        raise GiftCardError(f"Keep the message under {MESSAGE_MAX} characters.", param="message")
    if send_at is not None and send_at <= timezone.now():
        send_at = None
    recipient_email = _email_clean(recipient_email, param="recipient_email")
    if not recipient_email:
        raise GiftCardError(gettext_noop("Enter the recipient's email address."), param="recipient_email")
    return GiftCardPurchase.objects.create(
        checkout=checkout, recipient_email=recipient_email, recipient_name=_clean_text(recipient_name, 120),
        sender_name=_clean_text(sender_name, 120), message=message, send_at=send_at,
    )


# --- redeeming -----------------------------------------------------------------------------------


def _refusal(card: GiftCard, now) -> GiftCardError | None:
    if card.status == GiftCardStatus.DISABLED:
        return GiftCardDisabled(param="code")
    if card.status == GiftCardStatus.REDEEMED or card.balance == 0:
        return GiftCardUsedUp(param="code")
    if card.expires_at is not None and card.expires_at <= now:
        return GiftCardExpired(param="code")
    return None


def gift_card_find(*, store, code: str) -> GiftCard:
    """The store's card with this code, compared in constant time; GiftCardCodeInvalid otherwise
    (also for another store's card: the answer tells nothing about other stores)."""
    digest = code_hash(code)
    card = GiftCard.objects.filter(code_hash=digest).first()
    if card is None or not hmac.compare_digest(card.code_hash, digest) or card.store_id != store.pk:
        raise GiftCardCodeInvalid(param="code")
    return card


def gift_card_redeem(*, store, buyer, code: str, address: str = "") -> GiftCard:
    """Move the whole balance of the store's card with ``code`` into ``buyer``'s wallet.

    Rate limited per buyer and per client address (``gift_card_redeem_*`` limits), wrong codes
    and right ones alike. Refused, with nothing moved: a wrong code or another store's card
    (``gift_card_code_invalid``), a card already redeemed (``gift_card_used_up``), expired
    (``gift_card_expired``) or cancelled (``gift_card_disabled``)."""
    hits = [("gift_card_redeem_buyer", buyer.pk)]
    if address:
        hits.append(("gift_card_redeem_address", address))
    limits_hit(*hits, what="code attempts")
    if not code_normalize(code):
        raise GiftCardCodeInvalid(gettext_noop("Enter the gift card's code."), param="code")
    card = gift_card_find(store=store, code=code)
    now = timezone.now()
    refusal = _refusal(card, now)
    if refusal is not None:
        raise refusal
    with transaction.atomic():
        won = (
            GiftCard.objects.filter(pk=card.pk, status=GiftCardStatus.ACTIVE, balance=card.balance)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .update(status=GiftCardStatus.REDEEMED, balance=0, redeemed_by=buyer, redeemed_at=now)
        )
        if not won:  # someone redeemed (or the store cancelled) it since it was read
            raise _refusal(GiftCard.objects.get(pk=card.pk), now) or GiftCardUsedUp(param="code")
        wallet = wallet_for(buyer=buyer, currency=card.currency)
        if not wallet_mode_for_credit(wallet=wallet, livemode=card.livemode, reference=card.pk):
            raise GiftCardTestMoney(param="code")
        transfer_create(
            idempotency_key=f"{card.pk}:redeem", debit_account=_liability(card.store_id, card.currency, card.livemode),
            credit_account=wallet.account, amount=card.balance, code="gift_card_redeemed", reference=card.pk,
        )
        amount = card.balance
        card.status, card.balance, card.redeemed_by, card.redeemed_at = GiftCardStatus.REDEEMED, 0, buyer, now
        _event(card, "redeemed", amount, f"into the wallet of {buyer.email}")
        event_emit(store_id=card.store_id, type="gift_card.redeemed", data={"object": gift_card_out(card)})
    return card


@transaction.atomic
def gift_card_void(*, store, card_id: str, note: str = "") -> GiftCard:
    """Cancel an unredeemed card: its balance goes back from the liability to the store's balance.
    A card already redeemed cannot be cancelled: its money is in someone's wallet."""
    card = GiftCard.objects.select_for_update().filter(store=store, pk=card_id).first()
    if card is None:
        raise GiftCardNotFound()
    if card.status == GiftCardStatus.DISABLED:
        return card
    if card.status == GiftCardStatus.REDEEMED:
        raise GiftCardUsedUp("This gift card was redeemed: its money is in the redeemer's wallet.", param="id")
    amount = card.balance
    GiftCard.objects.filter(pk=card.pk).update(status=GiftCardStatus.DISABLED, balance=0, pending_code="")
    transfer_create(
        idempotency_key=f"{card.pk}:void", debit_account=_liability(card.store_id, card.currency, card.livemode),
        credit_account=_store_balance(card.store_id, card.currency, card.livemode), amount=amount,
        code="gift_card_voided", reference=card.pk,
    )
    card.status, card.balance, card.pending_code = GiftCardStatus.DISABLED, 0, ""
    _event(card, "disabled", amount, note or "cancelled by the store")
    return card


# --- refunds of the orders that bought cards -----------------------------------------------------


def gift_card_refund_check(*, order, amount: int) -> None:
    """A gift card order can be refunded while its cards are unredeemed (the refund cancels them);
    once one is redeemed, its money is in someone's wallet and the order is not refunded. Refunds
    of them are whole: a card is cancelled whole."""
    cards = GiftCard.objects.filter(order=order)
    if not cards.exists():
        return
    if amount != order.amount_total - order.amount_refunded:
        raise GiftCardError("Refund a gift card order in full: its cards are cancelled whole.", param="amount")
    if cards.filter(status=GiftCardStatus.REDEEMED).exists():
        raise GiftCardUsedUp(
            "A gift card of this order has been redeemed: the order can no longer be refunded.", param="order",
            code="gift_card_redeemed",
        )


def gift_card_order_refunded(*, order, refund, refunded_before: int = 0) -> None:
    """A refunded gift card order cancels its cards, so the liability returns to the store's
    balance that the refund is paid from."""
    for card_id in GiftCard.objects.filter(order=order, status=GiftCardStatus.ACTIVE).values_list("pk", flat=True):
        gift_card_void(store=order.store, card_id=card_id, note=f"order refunded ({refund.pk})")


# --- reading -------------------------------------------------------------------------------------


def gift_cards_for_store(*, store):
    return GiftCard.objects.filter(store=store).order_by("-pk")


def gift_card_get(*, store, card_id: str) -> GiftCard:
    card = GiftCard.objects.filter(store=store, pk=card_id).first()
    if card is None:
        raise GiftCardNotFound()
    return card


def gift_card_totals(*, store) -> dict:
    """Counts and sums of the store's cards for its dashboard page."""
    cards = GiftCard.objects.filter(store=store, livemode=True)
    return {
        "issued": cards.aggregate(total=Sum("initial_amount"))["total"] or 0,
        "outstanding": gift_card_liability(store=store),
        "active": cards.filter(status=GiftCardStatus.ACTIVE).count(),
    }


def gift_card_out(card: GiftCard) -> dict:
    return {
        "id": card.pk,
        "object": "gift_card",
        "code_last4": card.code_last4,
        "currency": card.currency,
        "initial_amount": card.initial_amount,
        "balance": card.balance,
        "status": card.status,
        "expires_at": timestamp(card.expires_at),
        "order": card.order_id,
        "recipient_email": card.recipient_email or None,
        "send_at": timestamp(card.send_at),
        "emailed_at": timestamp(card.emailed_at),
        "redeemed_at": timestamp(card.redeemed_at),
        "livemode": card.livemode,
        "created": timestamp(card.created_at),
    }

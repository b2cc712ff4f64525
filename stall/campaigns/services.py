"""Writes for campaigns, reward tiers and pledges (the deadline's settlement is in ``settlement``).

Money moves as the models' docstring says: a wallet pledge is a pending transfer into the
campaign's escrow, made in the pledge's own transaction; a card pledge saves the card (outside any
transaction: the rail may take seconds) and is charged later. A limited tier's slot is taken by a
guarded UPDATE in the pledge's transaction, so a refused pledge gives its slot back by rolling back.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from stall.catalog.models import Product
from stall.core.errors import InvalidRequest
from stall.core.ids import new_id
from stall.core.languages import language_to_record
from stall.core.money import amount_validate, currency_normalize, format_money
from stall.integrations.webhooks import EventRow, events_record
from stall.ledger.errors import InsufficientFunds
from stall.ledger.models import Account, Transfer
from stall.ledger.services import transfer_create, transfer_void
from stall.orders.services import customer_for_email
from stall.payments.errors import WalletEmpty
from stall.payments.models import SavedPaymentMethod
from stall.payments.rails import rail_get, test_money_check
from stall.payments.rails.wallet import wallet_for
from stall.payments.saved_methods import payment_method_save
from stall.stores.models import Store

from .collect import card_charge, card_claim, escrow_id, wallet_settle
from .errors import (
    CampaignEnded,
    CampaignInvalid,
    CampaignNotFound,
    CampaignNotLive,
    CampaignStateInvalid,
    PledgeInvalid,
    PledgeNotFound,
    PledgeStateInvalid,
    RewardTierNotFound,
    TierSoldOut,
)
from .models import (
    Campaign,
    CampaignMode,
    CampaignStatus,
    CampaignUpdate,
    Pledge,
    PledgeMethod,
    PledgeStatus,
    RewardTier,
)
from .notices import campaign_update_send
from .schemas import campaign_out, pledge_out

EDITABLE_STATUSES = (CampaignStatus.DRAFT, CampaignStatus.LIVE)


# --- Campaigns ----------------------------------------------------------------------------------


def _text(value, *, param: str, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise CampaignInvalid("Must be text.", param=param)
    value = value.strip()
    if required and not value:
        raise CampaignInvalid("This is required.", param=param)
    if len(value) > max_length:
        raise CampaignInvalid(f"At most {max_length} characters.", param=param)
    return value


def _goal(goal) -> int:
    if isinstance(goal, bool) or not isinstance(goal, int) or goal <= 0:
        raise CampaignInvalid("The goal must be a positive amount in minor units.", param="goal")
    return amount_validate(goal, param="goal")


def _deadline(deadline) -> datetime:
    if not isinstance(deadline, datetime):
        raise CampaignInvalid("Give the deadline as a date and time.", param="deadline")
    if timezone.is_naive(deadline):
        raise CampaignInvalid("Give the deadline with its time zone.", param="deadline")
    if deadline <= timezone.now():
        raise CampaignInvalid("The deadline must be in the future.", param="deadline")
    return deadline


def _mode(mode) -> str:
    if mode not in CampaignMode.values:
        raise CampaignInvalid(f"Mode must be one of: {', '.join(CampaignMode.values)}.", param="mode")
    return mode


def campaign_create(
    *, store: Store, title: str, goal: int, deadline: datetime, story: str = "", mode: str = CampaignMode.ALL_OR_NOTHING,
    currency: str | None = None, cover=None,
) -> Campaign:
    """A draft campaign: nothing can be pledged until it is published."""
    campaign = Campaign(
        store=store, title=_text(title, param="title", max_length=120, required=True),
        story=_text(story, param="story", max_length=50_000), goal=_goal(goal),
        currency=currency_normalize(currency or store.currency), deadline=_deadline(deadline), mode=_mode(mode),
    )
    if cover:
        campaign.cover = cover
    campaign.save()
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, **changes) -> Campaign:
    """Change a campaign before its deadline. Once live, its goal and mode are what backers pledged
    to, so they stay; the story, title, cover and a later deadline may change."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in EDITABLE_STATUSES:
        raise CampaignStateInvalid("A campaign that has ended cannot be changed.")
    live = campaign.status == CampaignStatus.LIVE
    if "title" in changes and changes["title"] is not None:
        campaign.title = _text(changes["title"], param="title", max_length=120, required=True)
    if "story" in changes and changes["story"] is not None:
        campaign.story = _text(changes["story"], param="story", max_length=50_000)
    if changes.get("cover"):
        campaign.cover = changes["cover"]
    for field, check in (("goal", _goal), ("mode", _mode)):
        if changes.get(field) is not None and changes[field] != getattr(campaign, field):
            if live:
                raise CampaignStateInvalid(f"A live campaign's {field} cannot change.", param=field)
            setattr(campaign, field, check(changes[field]))
    if changes.get("deadline") is not None and changes["deadline"] != campaign.deadline:
        deadline = _deadline(changes["deadline"])
        if live and deadline < campaign.deadline:
            raise CampaignStateInvalid("A live campaign's deadline can only move later.", param="deadline")
        campaign.deadline = deadline
    campaign.save()
    return campaign


@transaction.atomic
def campaign_publish(*, campaign: Campaign) -> Campaign:
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.DRAFT:
        raise CampaignStateInvalid("Only a draft campaign can be published.")
    if campaign.deadline <= timezone.now():
        raise CampaignInvalid("The deadline has passed: set a later one first.", param="deadline")
    campaign.status = CampaignStatus.LIVE
    campaign.published_at = timezone.now()
    campaign.save(update_fields=["status", "published_at", "updated_at"])
    return campaign


def campaign_cancel_mark(*, campaign: Campaign) -> Campaign:
    """Mark a draft or live campaign canceled (``settlement.campaign_cancel`` then releases its
    pledges)."""
    from_statuses = (CampaignStatus.DRAFT, CampaignStatus.LIVE)
    now = timezone.now()
    with transaction.atomic():
        changed = Campaign.objects.filter(pk=campaign.pk, status__in=from_statuses).update(
            status=CampaignStatus.CANCELED, decided_at=now, updated_at=now
        )
        if not changed:
            raise CampaignStateInvalid("Only a draft or live campaign can be canceled.")
        campaign.refresh_from_db()
        events_record(store_id=campaign.store_id, events=[EventRow("campaign.canceled", campaign_out(campaign))])
    return campaign


def campaign_delete(*, campaign: Campaign) -> None:
    """Delete a draft that nobody has pledged to; a published campaign is canceled instead."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.status != CampaignStatus.DRAFT or locked.pledges.exists():
            raise CampaignStateInvalid("Only a draft can be deleted; cancel a published campaign.")
        locked.delete()


def campaign_get(*, store: Store, campaign_id: str) -> Campaign:
    campaign = Campaign.objects.filter(store=store, pk=campaign_id).first()
    if campaign is None:
        raise CampaignNotFound(param="campaign")
    return campaign


# --- Reward tiers -------------------------------------------------------------------------------


def tier_create(
    *, campaign: Campaign, title: str, min_amount: int, description: str = "", quantity: int | None = None,
    estimated_delivery: date | None = None, product: Product | str | None = None, position: int | None = None,
) -> RewardTier:
    if campaign.status not in EDITABLE_STATUSES:
        raise CampaignStateInvalid("A campaign that has ended takes no new rewards.")
    if isinstance(min_amount, bool) or not isinstance(min_amount, int) or min_amount <= 0:
        raise CampaignInvalid("The minimum pledge must be a positive amount in minor units.", param="min_amount")
    amount_validate(min_amount, param="min_amount")
    if quantity is not None and (
        isinstance(quantity, bool) or not isinstance(quantity, int) or not 0 < quantity <= 1_000_000
    ):
        raise CampaignInvalid("The quantity must be a whole number from 1 to 1,000,000, or empty for unlimited.", param="quantity")
    if estimated_delivery is not None and not isinstance(estimated_delivery, date):
        raise CampaignInvalid("Give the estimated delivery as a date.", param="estimated_delivery")
    if isinstance(product, str):
        product = Product.objects.filter(store_id=campaign.store_id, pk=product).first()
        if product is None:
            raise InvalidRequest("No such product.", param="product", code="resource_missing")
    elif product is not None and product.store_id != campaign.store_id:
        raise InvalidRequest("No such product.", param="product", code="resource_missing")
    if position is None:
        position = campaign.tiers.count()
    return RewardTier.objects.create(
        campaign=campaign, title=_text(title, param="title", max_length=120, required=True),
        description=_text(description, param="description", max_length=5000), min_amount=min_amount,
        quantity=quantity, remaining=quantity, estimated_delivery=estimated_delivery, product=product, position=position,
    )


def tier_get(*, campaign: Campaign, tier_id: str) -> RewardTier:
    tier = RewardTier.objects.filter(campaign=campaign, pk=tier_id).first()
    if tier is None:
        raise RewardTierNotFound(param="tier")
    return tier


def _slot_take(tier: RewardTier | None) -> None:
    """Take one of a limited tier's slots, in the caller's transaction: one guarded UPDATE, so
    backers racing for the last slot cannot both have it."""
    if tier is None or tier.quantity is None:
        return
    if not RewardTier.objects.filter(pk=tier.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
        raise TierSoldOut(param="tier")


def _slot_give_back(tier_id: str | None) -> None:
    if tier_id:
        RewardTier.objects.filter(pk=tier_id, remaining__isnull=False).update(remaining=F("remaining") + 1)


# --- Pledges ------------------------------------------------------------------------------------


def _open_for_pledges(campaign: Campaign) -> None:
    if campaign.status != CampaignStatus.LIVE:
        raise CampaignNotLive(param="campaign")
    if timezone.now() >= campaign.deadline:
        raise CampaignEnded(param="campaign")


def _pledge_checks(*, campaign: Campaign, tier: RewardTier | None, amount, message) -> tuple[int, str]:
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise PledgeInvalid(gettext_noop("Pledge a positive amount in minor units."), param="amount")
    amount = amount_validate(amount, allow_zero=False)
    if tier is not None:
        if tier.campaign_id != campaign.pk:
            raise RewardTierNotFound(param="tier")
        if amount < tier.min_amount:
            raise PledgeInvalid(
                gettext("This reward needs a pledge of at least %(amount)s.")
                % {"amount": format_money(tier.min_amount, campaign.currency)},
                param="amount", code="amount_below_minimum",
            )
    if message is None:
        message = ""
    if not isinstance(message, str) or len(message.strip()) > 500:
        raise PledgeInvalid(gettext_noop("A message is at most 500 characters."), param="message")
    return amount, message.strip()


def _card_save(*, email: str, payment_method, store: Store, amount: int, currency: str) -> SavedPaymentMethod:
    if not isinstance(payment_method, str) or not payment_method.strip() or payment_method in ("wallet", "tab"):
        raise PledgeInvalid(gettext_noop("Give a card to pledge by card."), param="payment_method", code="card_required")
    rail = "sandbox" if payment_method.startswith("sandbox_") else "stripe"
    minimum = rail_get(rail).minimum_charge(currency)
    if amount < minimum:
        raise PledgeInvalid(
            gettext("A card pledge must be at least %(amount)s; pledge less from your wallet.")
                % {"amount": format_money(minimum, currency)},
            param="amount", code="amount_too_small",
        )
    return payment_method_save(email=email, rail=rail, payment_method=payment_method, store=store)


def _hold(*, pledge: Pledge, buyer) -> None:
    """Hold a wallet pledge's amount: a pending transfer from the wallet into the escrow."""
    wallet = wallet_for(buyer=buyer, currency=pledge.currency)
    if not wallet.livemode:
        test_money_check(store_id=pledge.campaign.store_id)
    escrow = Account.objects.get(
        pk=escrow_id(campaign_id=pledge.campaign_id, currency=pledge.currency, livemode=wallet.livemode)
    )
    try:
        transfer = transfer_create(
            idempotency_key=f"{pledge.pk}:hold:{pledge.version}", debit_account=wallet.account, credit_account=escrow,
            amount=pledge.amount, code="pledge_hold", reference=pledge.pk, pending=True,
        )
    except InsufficientFunds:
        raise WalletEmpty(param="amount") from None
    pledge.hold_transfer_id = transfer.pk
    pledge.wallet_account_id = wallet.account_id
    pledge.livemode = wallet.livemode


def _setup_ref(method: str, payment_method) -> str:
    """The Stripe SetupIntent a card pledge is made with (the card page's ``seti_…``), or ""."""
    if method == PledgeMethod.CARD and isinstance(payment_method, str) and payment_method.strip().startswith("seti_"):
        return payment_method.strip()
    return ""


def _pledge_of_setup(setup_ref: str, *, campaign: Campaign, buyer) -> Pledge | None:
    """The pledge this card setup already made, if any. A setup is one pledge: used again for
    another campaign it is refused."""
    pledge = Pledge.objects.filter(setup_ref=setup_ref).first()
    if pledge is None:
        return None
    if pledge.campaign_id != campaign.pk or pledge.email != buyer.email:
        raise PledgeInvalid(gettext_noop("This card was set up for another pledge: enter it again."),
                            param="payment_method", code="setup_used")
    return pledge


def pledge_create(
    *, campaign: Campaign, buyer, amount: int, method: str, tier: RewardTier | None = None,
    payment_method: str = "", message: str = "",
) -> Pledge:
    """Pledge ``amount`` to a live campaign, before its deadline, from the wallet (held at once) or
    by card (saved now, charged at the deadline). A keep-what-you-raise campaign collects it now.
    Raises, with nothing held and no slot taken, for a pledge under the tier's minimum, a sold-out
    tier, an empty wallet or a refused card."""
    if buyer is None:
        raise PledgeInvalid(gettext_noop("Sign in to pledge."), param="email", code="buyer_required")
    _open_for_pledges(campaign)
    amount, message = _pledge_checks(campaign=campaign, tier=tier, amount=amount, message=message)
    if method not in PledgeMethod.values:
        raise PledgeInvalid(gettext_noop("Pledge from your wallet or by card."), param="method")
    setup_ref = _setup_ref(method, payment_method)
    if setup_ref and (done := _pledge_of_setup(setup_ref, campaign=campaign, buyer=buyer)) is not None:
        return done  # this card setup made its pledge already (the return page reloaded)
    saved = None
    if method == PledgeMethod.CARD:
        # Outside the transaction: the rail may take seconds (a Stripe SetupIntent).
        saved = _card_save(email=buyer.email, payment_method=payment_method, store=campaign.store, amount=amount,
                           currency=campaign.currency)
    try:
        with transaction.atomic():
            # Checked again inside the transaction, after the card was saved.
            _open_for_pledges(Campaign.objects.only("status", "deadline").get(pk=campaign.pk))
            _slot_take(tier)
            pledge = Pledge(
                id=new_id("plg"), campaign=campaign, tier=tier, buyer=buyer, email=buyer.email, amount=amount,
                currency=campaign.currency, method=method, message=message, saved=saved, setup_ref=setup_ref,
                language=language_to_record(),
                status=PledgeStatus.HELD if method == PledgeMethod.WALLET else PledgeStatus.SAVED,
            )
            if method == PledgeMethod.WALLET:
                _hold(pledge=pledge, buyer=buyer)
            pledge.save(force_insert=True)
            # A backer is one of the store's customers, as a buyer is (audience lists them).
            customer_for_email(store_id=campaign.store_id, email=buyer.email)
            events_record(store_id=campaign.store_id, events=[EventRow("pledge.created", pledge_out(pledge))])
            if method == PledgeMethod.WALLET and not campaign.all_or_nothing:
                wallet_settle(campaign=campaign, collect=True, pledge_ids=[pledge.pk])
    except IntegrityError:
        # Another request with the same card setup made its pledge first (the database refused
        # this one, and rolled back its slot): answer with that pledge.
        done = _pledge_of_setup(setup_ref, campaign=campaign, buyer=buyer) if setup_ref else None
        if done is None:
            raise
        return done
    if method == PledgeMethod.CARD and not campaign.all_or_nothing:
        _card_collect_now(pledge)
    pledge.refresh_from_db()
    return pledge


def _card_collect_now(pledge: Pledge) -> None:
    """Keep-what-you-raise by card: charge at once; a refused card cancels the pledge."""
    if not card_claim(pledge=pledge, from_statuses=(PledgeStatus.SAVED,)):
        return
    pledge.status = PledgeStatus.CHARGING
    outcome = _charge_at_once(pledge)
    if outcome != PledgeStatus.COLLECTED:
        with transaction.atomic():
            if Pledge.objects.filter(pk=pledge.pk, status__in=(PledgeStatus.FAILED, PledgeStatus.CHARGING)).update(
                status=PledgeStatus.CANCELED, next_attempt_at=None, updated_at=timezone.now()
            ):
                _slot_give_back(pledge.tier_id)
        raise PledgeInvalid(gettext_noop("The card was declined."), param="payment_method", code="card_declined")


def _charge_at_once(pledge: Pledge) -> str:
    """Charge a card pledge with the backer present: no recovery emails for a refusal they see."""
    return card_charge(pledge=pledge, notify=False)


def pledge_get(*, pledge_id: str, store: Store | None = None, email: str | None = None) -> Pledge:
    """A pledge of ``store`` (the creator's and the API's view) or of ``email`` (the backer's)."""
    pledges = Pledge.objects.select_related("campaign__store", "tier", "saved")
    if store is not None:
        pledges = pledges.filter(campaign__store=store)
    if email is not None:
        pledges = pledges.filter(email__iexact=email)
    pledge = pledges.filter(pk=pledge_id).first()
    if pledge is None:
        raise PledgeNotFound(param="pledge")
    return pledge


def _changeable(pledge: Pledge) -> None:
    _open_for_pledges(pledge.campaign)
    if pledge.status not in (PledgeStatus.HELD, PledgeStatus.SAVED):
        raise PledgeStateInvalid(gettext_noop("This pledge can no longer be changed."))


def pledge_change(
    *, pledge: Pledge, amount: int | None = None, tier: RewardTier | None | str = "keep", message: str | None = None,
) -> Pledge:
    """Change a pledge's amount, reward or message before the deadline. A held wallet pledge's hold
    is voided and a new one made for the new amount, in one transaction (an empty wallet refuses it
    and the old hold stays)."""
    campaign = pledge.campaign
    with transaction.atomic():
        locked = Pledge.objects.select_for_update(of=("self",)).select_related("campaign", "tier").get(pk=pledge.pk)
        _changeable(locked)
        new_tier = locked.tier if tier == "keep" else tier
        new_amount = locked.amount if amount is None else amount
        new_amount, new_message = _pledge_checks(
            campaign=campaign, tier=new_tier, amount=new_amount, message=locked.message if message is None else message,
        )
        if locked.method == PledgeMethod.CARD:
            minimum = rail_get(locked.saved.rail).minimum_charge(locked.currency)
            if new_amount < minimum:
                raise PledgeInvalid(gettext("A card pledge must be at least %(amount)s.")
                                    % {"amount": format_money(minimum, locked.currency)},
                                    param="amount", code="amount_too_small")
        if (new_tier.pk if new_tier else None) != locked.tier_id:
            _slot_give_back(locked.tier_id)
            _slot_take(new_tier)
        if locked.method == PledgeMethod.WALLET and new_amount != locked.amount:
            transfer_void(transfer=Transfer.objects.get(pk=locked.hold_transfer_id))
            locked.version += 1
            locked.amount = new_amount
            _hold(pledge=locked, buyer=locked.buyer)
        locked.amount, locked.tier, locked.message = new_amount, new_tier, new_message
        locked.save()
    return locked


def pledge_cancel(*, pledge: Pledge) -> Pledge:
    """Cancel a pledge before the deadline: a held wallet pledge is voided back at once, a saved
    card released, a limited reward's slot given back."""
    with transaction.atomic():
        locked = Pledge.objects.select_for_update(of=("self",)).select_related("campaign").get(pk=pledge.pk)
        _changeable(locked)
        Pledge.objects.filter(pk=locked.pk).update(status=PledgeStatus.CANCELED, updated_at=timezone.now())
        if locked.method == PledgeMethod.WALLET:
            transfer_void(transfer=Transfer.objects.get(pk=locked.hold_transfer_id))
        _slot_give_back(locked.tier_id)
        locked.status = PledgeStatus.CANCELED
        events_record(store_id=locked.campaign.store_id, events=[EventRow("pledge.canceled", pledge_out(locked))])
    return locked


def pledge_pay_another_way(*, pledge: Pledge, method: str, payment_method: str = "") -> Pledge:
    """Pay a pledge whose card charge failed (during its recovery): from the backer's wallet, or
    with another card charged now."""
    if pledge.status != PledgeStatus.FAILED:
        raise PledgeStateInvalid(gettext_noop("Only a pledge whose charge failed can be paid another way."))
    campaign = pledge.campaign
    if method == PledgeMethod.WALLET:
        with transaction.atomic():
            locked = Pledge.objects.select_for_update().get(pk=pledge.pk)
            if locked.status != PledgeStatus.FAILED:
                raise PledgeStateInvalid(gettext_noop("This pledge is no longer waiting for payment."))
            # Held and collected in the same transaction: the held pledge takes the wallet path.
            Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.HELD, next_attempt_at=None)
            pledge.status = PledgeStatus.HELD
            _hold(pledge=pledge, buyer=pledge.buyer)
            Pledge.objects.filter(pk=pledge.pk).update(
                hold_transfer_id=pledge.hold_transfer_id, wallet_account_id=pledge.wallet_account_id,
                livemode=pledge.livemode, method=PledgeMethod.WALLET,
            )
            wallet_settle(campaign=campaign, collect=True, pledge_ids=[pledge.pk])
        pledge.refresh_from_db()
        return pledge
    if method != PledgeMethod.CARD:
        raise PledgeInvalid(gettext_noop("Pay from your wallet or by card."), param="method")
    saved = _card_save(email=pledge.email, payment_method=payment_method, store=campaign.store, amount=pledge.amount,
                       currency=pledge.currency)
    Pledge.objects.filter(pk=pledge.pk, status=PledgeStatus.FAILED).update(saved=saved)
    pledge.saved = saved
    if not card_claim(pledge=pledge, from_statuses=(PledgeStatus.FAILED,)):
        raise PledgeStateInvalid(gettext_noop("This pledge is no longer waiting for payment."))
    if _charge_at_once(pledge) != PledgeStatus.COLLECTED:
        raise PledgeInvalid(gettext_noop("The card was declined."), param="payment_method", code="card_declined")
    pledge.refresh_from_db()
    return pledge


def campaign_update_post(*, campaign: Campaign, title: str, body: str, tier: RewardTier | None = None):
    """Post an update to the campaign's backers (or one tier's), emailed after the commit."""
    if tier is not None and tier.campaign_id != campaign.pk:
        raise RewardTierNotFound(param="tier")
    title = _text(title, param="title", max_length=120, required=True)
    body = _text(body, param="body", max_length=20_000, required=True)
    with transaction.atomic():
        update = CampaignUpdate.objects.create(campaign=campaign, tier=tier, title=title, body=body)
        transaction.on_commit(lambda: campaign_update_send(update.pk))
    return update

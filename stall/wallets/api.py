"""API v1: charges against a customer's allowance, and the store's customers with their wallet.

Each endpoint parses, calls one service or selector, serializes.
"""

from ninja import Query, Router

from stall.accounts.services import buyer_for_email
from stall.core.api import (
    Error,
    ListParams,
    ObjectId,
    paginate,
    responses,
    router_refuse_other_methods,
)
from stall.core.errors import InvalidRequest

from . import allowances, gift_cards
from .schemas import (
    ChargeCreateIn,
    ChargeList,
    ChargeOut,
    CustomerList,
    CustomerListFilter,
    CustomerOut,
    CustomerWalletOut,
    GiftCardCreatedOut,
    GiftCardCreateIn,
    GiftCardList,
    GiftCardOut,
    GiftCardRedeemIn,
    charge_out,
    customer_out,
    customer_wallet_out,
)

router = Router()
customers_router = Router()
gift_cards_router = Router()


@router.post("", response={**responses(ChargeOut), 403: Error}, summary="Charge a customer's wallet")
def charge_create(request, payload: ChargeCreateIn):
    """Takes ``amount`` from the customer's wallet with no click, against the allowance the customer
    gave this store. Refused with ``allowance_missing``, ``allowance_revoked`` or ``allowance_expired``
    (403), ``allowance_exceeded`` or ``insufficient_funds`` (402), ``currency_mismatch`` (400),
    ``test_money_refused`` (402: the wallet holds test money, and this store takes no test cards); a
    refused charge moves no money. Send an ``Idempotency-Key``: a retry then charges once."""
    try:
        charge = allowances.charge_create(
            store=request.store, customer_id=payload.customer, amount=payload.amount, currency=payload.currency,
            description=payload.description, idempotency_key=request.headers.get("Idempotency-Key"),
        )
    except allowances.CustomerNotFound:
        # A missing object named in the body is a bad request about that parameter, as in Stripe.
        raise InvalidRequest("No such customer.", param="customer", code="resource_missing") from None
    return charge_out(charge)


@router.get("", response=responses(ChargeList), summary="List charges, newest first")
def charge_list(request, params: Query[ListParams]):
    return paginate(allowances.charges_for_store(store=request.store), params, charge_out)


@router.get("/{id}", response=responses(ChargeOut), summary="Retrieve a charge")
def charge_retrieve(request, id: ObjectId):
    return charge_out(allowances.charge_get(store=request.store, charge_id=id))


router_refuse_other_methods(router)


@customers_router.get("", response=responses(CustomerList), summary="List customers, newest first")
def customer_list(request, params: Query[ListParams], filters: Query[CustomerListFilter]):
    """A customer is made at a buyer's first order from the store, or when they grant it an allowance."""
    qs = allowances.customers_for_store(store=request.store)
    if filters.email:
        qs = qs.filter(email__iexact=filters.email.strip())
    return paginate(qs, params, customer_out)


@customers_router.get("/{id}", response=responses(CustomerOut), summary="Retrieve a customer")
def customer_retrieve(request, id: ObjectId):
    return customer_out(allowances.customer_get(store=request.store, customer_id=id))


@customers_router.get(
    "/{id}/wallet", response={**responses(CustomerWalletOut), 403: Error},
    summary="A customer's wallet and allowance",
)
def customer_wallet_retrieve(request, id: ObjectId):
    """The balance of the customer's wallet and what is left of their allowance this period. Only
    while the customer allows this store to charge them: otherwise 403 with ``allowance_missing``,
    ``allowance_revoked`` or ``allowance_expired``, and nothing about the wallet."""
    return customer_wallet_out(allowances.customer_wallet_get(store=request.store, customer_id=id))


router_refuse_other_methods(customers_router)


@gift_cards_router.get("", response=responses(GiftCardList), summary="List gift cards, newest first")
def gift_card_list(request, params: Query[ListParams]):
    return paginate(gift_cards.gift_cards_for_store(store=request.store), params, gift_cards.gift_card_out)


@gift_cards_router.post("", response=responses(GiftCardCreatedOut), summary="Issue a gift card")
def gift_card_create(request, payload: GiftCardCreateIn):
    """Issues a card worth ``amount`` of the store's currency, funded from the store's balance (a
    giveaway, or credit instead of a refund), and emails its code to ``recipient_email`` when given.
    The response carries the ``code``: this once only, since Stall keeps only its hash."""
    card, code = gift_cards.gift_card_issue(
        store=request.store, amount=payload.amount, recipient_email=payload.recipient_email or "",
        recipient_name=payload.recipient_name, sender_name=payload.sender_name, message=payload.message,
        send_at=payload.send_at, expires_at=payload.expires_at,
    )
    return {**gift_cards.gift_card_out(card), "code": code}


# Before /{id}: its pattern would take /redeem.
@gift_cards_router.post("/redeem", response=responses(GiftCardOut), summary="Redeem a gift card for a customer")
def gift_card_redeem(request, payload: GiftCardRedeemIn):
    """Moves the whole balance of the store's card with ``code`` into the customer's wallet.
    Refused with nothing moved: ``gift_card_code_invalid`` (a wrong code, or another store's card),
    ``gift_card_used_up``, ``gift_card_expired``, ``gift_card_disabled`` (400); ``rate_limited``
    (429) after too many attempts for one customer. (Not per address: the caller is the store's
    own server, redeeming for all its customers, and its key is limited as every key is.)"""
    try:
        customer = allowances.customer_get(store=request.store, customer_id=payload.customer)
    except allowances.CustomerNotFound:
        raise InvalidRequest("No such customer.", param="customer", code="resource_missing") from None
    card = gift_cards.gift_card_redeem(store=request.store, buyer=buyer_for_email(email=customer.email), code=payload.code)
    return gift_cards.gift_card_out(card)


@gift_cards_router.get("/{id}", response=responses(GiftCardOut), summary="Retrieve a gift card")
def gift_card_retrieve(request, id: ObjectId):
    return gift_cards.gift_card_out(gift_cards.gift_card_get(store=request.store, card_id=id))


router_refuse_other_methods(gift_cards_router)

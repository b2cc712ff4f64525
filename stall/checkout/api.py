"""API v1: checkouts. Each endpoint parses, calls one service, serializes."""

from ninja import Router

from stall.core.api import ObjectId, responses, router_refuse_other_methods
from stall.core.errors import StallError
from stall.payments.services import checkout_confirm as payment_checkout_confirm

from . import selectors, services
from .schemas import CheckoutConfirmIn, CheckoutCreateIn, CheckoutOut, checkout_out

router = Router()


@router.post("", response=responses(CheckoutOut), summary="Create a checkout")
def checkout_create(request, payload: CheckoutCreateIn):
    """Prices every line on the server; the checkout is paid with /confirm or on its hosted page (``url``)."""
    items = payload.checkout_items()
    try:
        checkout = services.checkout_create(store=request.store, email=payload.email, items=items)
    except StallError as exc:
        # The service names the first line's fields as the one-product form does ("amount",
        # "product"); a client that sent ``items`` should hear "items[0].amount".
        if payload.items is not None and exc.param in ("product", "amount", "quantity"):
            exc.param = f"items[0].{exc.param}"
        raise
    return checkout_out(checkout)


@router.get("/{id}", response=responses(CheckoutOut), summary="Retrieve a checkout")
def checkout_retrieve(request, id: ObjectId):
    return checkout_out(selectors.checkout_get(checkout_id=id, store=request.store))


@router.post("/{id}/confirm", response=responses(CheckoutOut), summary="Pay for a checkout")
def checkout_confirm(request, id: ObjectId, payload: CheckoutConfirmIn):
    """Charges the payment method. A decline is a 402 error and leaves the checkout open for another
    try; ``sandbox_3ds`` answers with ``payment.next_action``: send the buyer to its URL."""
    checkout = selectors.checkout_get(checkout_id=id, store=request.store)
    payment_checkout_confirm(checkout_id=checkout.pk, payment_method=payload.payment_method)
    return checkout_out(selectors.checkout_get(checkout_id=checkout.pk, store=request.store))


router_refuse_other_methods(router)

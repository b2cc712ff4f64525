"""API v1: checkouts, orders and refunds — the routers whose endpoints pay, read or refund an order.
Each endpoint parses, calls one service or selector, and serializes.

The checkouts and refunds routers live here rather than in ``checkout`` and ``payments`` because
confirming a checkout makes an order and a refund changes one: orders is the lowest layer that
sees all three.
"""

from ninja import Query, Router

from stall.checkout import selectors as checkout_selectors
from stall.checkout import services as checkout_services
from stall.checkout.schemas import CheckoutConfirmIn, CheckoutCreateIn, CheckoutOut, checkout_out
from stall.core.api import (
    Error,
    ListParams,
    ObjectId,
    paginate,
    responses,
    router_refuse_other_methods,
)
from stall.core.errors import InvalidRequest, StallError
from stall.core.limits import client_address, limits_hit
from stall.payments import selectors as payment_selectors
from stall.payments.schemas import RefundCreateIn, RefundList, RefundOut, refund_out

from . import licenses, selectors
from .checkout_pay import checkout_confirm as checkout_pay_confirm
from .errors import OrderNotFound
from .license_seats import license_activate_or_buy_seat
from .refunds import refund_create as order_refund_create
from .schemas import (
    LicenseActivateIn,
    LicenseActivateOut,
    LicenseDeactivateIn,
    LicenseDeactivateOut,
    LicenseValidateIn,
    LicenseValidateOut,
    OrderList,
    OrderListFilter,
    OrderOut,
    order_out,
)

router = Router()
checkouts_router = Router()
refunds_router = Router()
# Called by the software a key unlocks, on every start: the license key is the credential, so no
# API key (which must never ship inside software) is asked for.
licenses_router = Router(auth=None)


@router.get("", response=responses(OrderList), summary="List orders, newest first")
def order_list(request, params: Query[ListParams], filters: Query[OrderListFilter]):
    qs = selectors.orders_for_store(store=request.store).prefetch_related("lines")
    if filters.email:
        qs = qs.filter(email__iexact=filters.email.strip())
    return paginate(qs, params, order_out)


@router.get("/{id}", response=responses(OrderOut), summary="Retrieve an order")
def order_retrieve(request, id: ObjectId):
    return order_out(selectors.order_get(store=request.store, order_id=id))


router_refuse_other_methods(router)


# --- Checkouts ----------------------------------------------------------------------------------


@checkouts_router.post("", response=responses(CheckoutOut), summary="Create a checkout")
def checkout_create(request, payload: CheckoutCreateIn):
    """Prices every line on the server; the checkout is paid with /confirm or on its hosted page (``url``)."""
    items = payload.checkout_items()
    limits_hit(("checkout_key", request.api_key.pk), what="checkouts")
    try:
        checkout = checkout_services.checkout_create(
            store=request.store, email=payload.email, items=items, discount_code=payload.discount_code,
        )
    except StallError as exc:
        # The service names the first line's fields as the one-product form does ("amount",
        # "product"); a client that sent ``items`` should hear "items[0].amount".
        if payload.items is not None and exc.param in ("product", "amount", "quantity"):
            exc.param = f"items[0].{exc.param}"
        raise
    return checkout_out(checkout)


@checkouts_router.get("/{id}", response=responses(CheckoutOut), summary="Retrieve a checkout")
def checkout_retrieve(request, id: ObjectId):
    return checkout_out(checkout_selectors.checkout_get(checkout_id=id, store=request.store))


@checkouts_router.post("/{id}/confirm", response=responses(CheckoutOut), summary="Pay for a checkout")
def checkout_confirm(request, id: ObjectId, payload: CheckoutConfirmIn):
    """Charges the payment method. A decline is a 402 error and leaves the checkout open for another
    try; ``sandbox_3ds`` answers with ``payment.next_action``: send the buyer to its URL."""
    checkout = checkout_selectors.checkout_get(checkout_id=id, store=request.store, full=False)
    paid = checkout_pay_confirm(checkout_id=checkout.pk, payment_method=payload.payment_method, checkout=checkout)
    return checkout_out(checkout_selectors.checkout_shown(checkout=paid, store=request.store))


router_refuse_other_methods(checkouts_router)


# --- Refunds ------------------------------------------------------------------------------------


@refunds_router.post("", response=responses(RefundOut), summary="Refund an order")
def refund_create(request, payload: RefundCreateIn):
    """Refunds all of the order, or ``amount`` of it, through the rail that took the payment. The
    processor's fee is not returned; a full refund revokes the order's downloads."""
    try:
        refund = order_refund_create(
            store=request.store, order_id=payload.order, amount=payload.amount, reason=payload.reason,
            line_id=payload.line,
        )
    except OrderNotFound:
        # A missing object named in the body is a bad request about that parameter, as in Stripe.
        raise InvalidRequest("No such order.", param="order", code="resource_missing") from None
    return refund_out(refund)


@refunds_router.get("", response=responses(RefundList), summary="List refunds, newest first")
def refund_list(request, params: Query[ListParams]):
    return paginate(payment_selectors.refunds_for_store(store=request.store), params, refund_out)


@refunds_router.get("/{id}", response=responses(RefundOut), summary="Retrieve a refund")
def refund_retrieve(request, id: ObjectId):
    return refund_out(payment_selectors.refund_get(store=request.store, refund_id=id))


router_refuse_other_methods(refunds_router)


_LICENSE_DOC = (
    " Authenticated by the license key itself (no API key). Rate limited per key and per client "
    "address (429 ``rate_limited``). An unknown key is 404 ``license_key_invalid``."
)


@licenses_router.post("/activate", response={**responses(LicenseActivateOut), 403: Error},
                      summary="Activate a license key on an instance")
def license_activate(request, payload: LicenseActivateIn):
    """Returns the new instance's id (keep it to validate and deactivate). Refused (403) with
    ``activation_limit_reached``, ``license_disabled`` or ``license_expired``.

    At the limit, when the creator sells extra seats and the key's owner allowed them on their
    library page, one more seat is bought from the owner's wallet or tab and the instance is
    activated in it: ``charged`` says what it cost (null otherwise). Refusals of that charge are
    the wallet's (402 ``insufficient_funds``) or the tab's (``tab_limit_reached``). Send an
    ``Idempotency-Key`` so that a retry of the same call never buys a second seat."""
    return license_activate_or_buy_seat(key=payload.license_key, instance_name=payload.instance_name,
                                        address=client_address(request))


license_activate.__doc__ += _LICENSE_DOC


@licenses_router.post("/validate", response=responses(LicenseValidateOut), summary="Validate a license key")
def license_validate(request, payload: LicenseValidateIn):
    """``valid`` says whether the key (and the instance, when given) may be used now; ``error``
    says why not. The key's status, product, customer, activations and expiry come with it."""
    return licenses.license_validate(key=payload.license_key, instance_id=payload.instance_id,
                                     address=client_address(request))


license_validate.__doc__ += _LICENSE_DOC


@licenses_router.post("/deactivate", response=responses(LicenseDeactivateOut), summary="Deactivate an instance")
def license_deactivate(request, payload: LicenseDeactivateIn):
    """Frees the instance's activation. An unknown or already deactivated instance is 404 ``instance_invalid``."""
    return licenses.license_deactivate(key=payload.license_key, instance_id=payload.instance_id,
                                       address=client_address(request))


license_deactivate.__doc__ += _LICENSE_DOC
router_refuse_other_methods(licenses_router)

"""API v1: refunds. Each endpoint parses, calls one service or selector, serializes."""

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods
from stall.core.errors import InvalidRequest
from stall.orders.errors import OrderNotFound

from . import selectors, services
from .schemas import RefundCreateIn, RefundList, RefundOut, refund_out

router = Router()


@router.post("", response=responses(RefundOut), summary="Refund an order")
def refund_create(request, payload: RefundCreateIn):
    """Refunds all of the order, or ``amount`` of it, through the rail that took the payment. The
    processor's fee is not returned; a full refund revokes the order's downloads."""
    try:
        refund = services.refund_create(
            store=request.store, order_id=payload.order, amount=payload.amount, reason=payload.reason
        )
    except OrderNotFound:
        # A missing object named in the body is a bad request about that parameter, as in Stripe.
        raise InvalidRequest("No such order.", param="order", code="resource_missing") from None
    return refund_out(refund)


@router.get("", response=responses(RefundList), summary="List refunds, newest first")
def refund_list(request, params: Query[ListParams]):
    return paginate(selectors.refunds_for_store(store=request.store), params, refund_out)


@router.get("/{id}", response=responses(RefundOut), summary="Retrieve a refund")
def refund_retrieve(request, id: ObjectId):
    return refund_out(selectors.refund_get(store=request.store, refund_id=id))


router_refuse_other_methods(router)

"""API v1: orders. Read-only; each endpoint calls one selector and serializes."""

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import selectors
from .schemas import OrderList, OrderListFilter, OrderOut, order_out

router = Router()


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

"""API v1: discount codes (create, list, retrieve, update, deactivate, delete). Each endpoint
parses, calls one service or selector, serializes; another store's discount is "not found"."""

from datetime import UTC, datetime

from ninja import Query, Router

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import discounts as services
from .schemas import DiscountCreateIn, DiscountList, DiscountOut, DiscountUpdateIn, discount_out

discounts_router = Router()


def _times(values: dict) -> dict:
    for name in ("starts_at", "ends_at"):
        if values.get(name) is not None:
            values[name] = datetime.fromtimestamp(values[name], tz=UTC)
    return values


@discounts_router.post("", response=responses(DiscountOut), summary="Create a discount code")
def discount_create(request, payload: DiscountCreateIn):
    """Percent (``percent_off``) or fixed (``amount_off``, in the store's currency) off every product,
    or only ``products``. Buyers apply it at checkout (``discount_code``) or follow ``?code=…``."""
    return discount_out(services.discount_create(store=request.store, **_times(payload.model_dump())))


@discounts_router.get("", response=responses(DiscountList), summary="List discount codes, newest first")
def discount_list(request, params: Query[ListParams]):
    return paginate(services.discounts_for_store(store=request.store), params, discount_out)


@discounts_router.get("/{id}", response=responses(DiscountOut), summary="Retrieve a discount code")
def discount_retrieve(request, id: ObjectId):
    return discount_out(services.discount_get(store=request.store, discount_id=id))


@discounts_router.patch("/{id}", response=responses(DiscountOut), summary="Update a discount code (PATCH)")
@discounts_router.post("/{id}", response=responses(DiscountOut), summary="Update a discount code")
def discount_update(request, id: ObjectId, payload: DiscountUpdateIn):
    """Changes only the parameters sent. A code switched off (``active`` false) or past its end is
    refused even on checkouts already open, when they are paid."""
    discount = services.discount_get(store=request.store, discount_id=id)
    discount = services.discount_update(discount=discount, **_times(payload.model_dump(exclude_unset=True)))
    return discount_out(services.discount_get(store=request.store, discount_id=discount.pk))


@discounts_router.post("/{id}/deactivate", response=responses(DiscountOut), summary="Deactivate a discount code")
def discount_deactivate(request, id: ObjectId):
    discount = services.discount_deactivate(discount=services.discount_get(store=request.store, discount_id=id))
    return discount_out(services.discount_get(store=request.store, discount_id=discount.pk))


@discounts_router.delete("/{id}", response=responses(DiscountOut), summary="Delete a discount code")
def discount_delete(request, id: ObjectId):
    """Only a code no checkout has used; one that has is deactivated instead (409 ``discount_in_use``)."""
    discount = services.discount_get(store=request.store, discount_id=id)
    out = discount_out(discount)
    services.discount_delete(discount=discount)
    return {**out, "active": False}


router_refuse_other_methods(discounts_router)

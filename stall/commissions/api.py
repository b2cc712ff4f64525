"""API v1: commissions, the creator's side: list, retrieve, message the buyer, deliver, decline.
Each endpoint parses, calls one service or selector, serializes. ``{id}`` is a commission's id
(``com_…``) or its order's (``ord_…``); another store's is "not found", an order that is not a
commission is ``not_a_commission``."""

from typing import Annotated

from ninja import File, Form, Query, Router, UploadedFile
from pydantic import WithJsonSchema

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import selectors, services
from .models import Author
from .schemas import (
    CommissionDeclineIn,
    CommissionList,
    CommissionListFilter,
    CommissionMessageIn,
    CommissionOut,
    commission_out,
)

router = Router()

Upload = Annotated[UploadedFile, WithJsonSchema({"type": "string", "format": "binary", "minLength": 1})]


def _detail(request, commission_id: str) -> dict:
    commission = services.commission_for_store(store=request.store, commission_id=commission_id)
    return commission_out(commission, detail=True)


@router.get("", response=responses(CommissionList), summary="List commissions, newest first")
def commission_list(request, params: Query[ListParams], filters: Query[CommissionListFilter]):
    qs = selectors.commissions_for_store(store=request.store)
    if filters.status:
        qs = qs.filter(status=filters.status)
    return paginate(qs, params, commission_out)


@router.get("/{id}", response=responses(CommissionOut), summary="Retrieve a commission")
def commission_retrieve(request, id: ObjectId):
    return _detail(request, id)


@router.post("/{id}/deliver", response=responses(CommissionOut), summary="Deliver a commission")
def commission_deliver(request, id: ObjectId, note: Form[str] = "", files: File[list[Upload]] = None):
    """multipart/form-data: ``note`` and any number of ``files``. The buyer is emailed and has the
    offer's days to accept; after that it is accepted for them and the held payment is released."""
    services.commission_deliver(store=request.store, commission_id=id, note=note, files=files or [])
    return _detail(request, id)


@router.post("/{id}/decline", response=responses(CommissionOut), summary="Decline a commission and refund it")
def commission_decline(request, id: ObjectId, payload: CommissionDeclineIn):
    """Voids the held payment and refunds the order in full through its rail."""
    services.commission_decline(store=request.store, commission_id=id, reason=payload.reason)
    return _detail(request, id)


@router.post("/{id}/messages", response=responses(CommissionOut), summary="Message the buyer")
def commission_message(request, id: ObjectId, payload: CommissionMessageIn):
    commission = services.commission_for_store(store=request.store, commission_id=id)
    services.commission_message_add(commission=commission, author=Author.CREATOR, body=payload.body)
    return _detail(request, id)


router_refuse_other_methods(router)

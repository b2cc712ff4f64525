"""API v1: products. Each endpoint parses, calls one catalog service or selector, serializes."""

from typing import Annotated

from ninja import File, Query, Router, UploadedFile
from pydantic import WithJsonSchema

from stall.core.api import ListParams, ObjectId, paginate, responses, router_refuse_other_methods

from . import selectors, services
from .errors import ProductInvalid
from .schemas import (
    ProductCreateIn,
    ProductFileOut,
    ProductList,
    ProductListFilter,
    ProductOut,
    ProductUpdateIn,
    file_out,
    product_out,
)

router = Router()

# An empty file is refused (invalid_file); the document says so.
Upload = Annotated[
    UploadedFile, WithJsonSchema({"type": "string", "format": "binary", "minLength": 1})
]


@router.post("", response=responses(ProductOut), summary="Create a product")
def product_create(request, payload: ProductCreateIn):
    """A download is made as a draft, given files (``POST /products/{id}/files``), then published:
    publishing one with no files is refused (``product_has_no_files``, param ``status``)."""
    data = payload.model_dump(exclude={"service"})
    if payload.service is not None and payload.kind != "service":
        raise ProductInvalid("Only a service product has service terms.", param="service")
    terms = payload.service.model_dump(exclude_unset=True) if payload.service is not None else None
    product = services.product_create(store=request.store, terms=terms, **data)
    return product_out(product)


@router.get("", response=responses(ProductList), summary="List products, newest first")
def product_list(request, params: Query[ListParams], filters: Query[ProductListFilter]):
    qs = selectors.products_for_store(store=request.store).select_related("store")
    if filters.status:
        qs = qs.filter(status=filters.status)
    return paginate(qs, params, product_out)


@router.get("/{id}", response=responses(ProductOut), summary="Retrieve a product")
def product_retrieve(request, id: ObjectId):
    return product_out(selectors.product_get(store=request.store, product_id=id))


# POST and PATCH are two operations (the lower decorator registers first), so that each has
# its own operationId.
@router.patch("/{id}", response=responses(ProductOut), summary="Update a product (PATCH)")
@router.post("/{id}", response=responses(ProductOut), summary="Update a product")
def product_update(request, id: ObjectId, payload: ProductUpdateIn):
    """Changes only the parameters sent, like Stripe's update endpoints. Publishing a download with
    no files is refused (``product_has_no_files``, param ``status``): upload a file first."""
    product = selectors.product_get(store=request.store, product_id=id)
    data = payload.model_dump(exclude_unset=True, exclude={"service"})
    if "service" in payload.model_fields_set:
        if product.kind != "service" or payload.service is None:
            raise ProductInvalid("Only a service product has service terms.", param="service")
        data["terms"] = payload.service.model_dump(exclude_unset=True)
    product = services.product_update(product=product, **data)
    return product_out(product)


@router.post("/{id}/archive", response=responses(ProductOut), summary="Archive a product")
def product_archive(request, id: ObjectId):
    """An archived product is off the store and cannot be bought; its orders and downloads stay."""
    product = selectors.product_get(store=request.store, product_id=id)
    return product_out(services.product_archive(product=product))


@router.post("/{id}/files", response=responses(ProductFileOut), summary="Upload a file to a product")
def product_file_add(request, id: ObjectId, file: File[Upload]):
    """A multipart/form-data upload in the field ``file``; buyers download it after paying."""
    product = selectors.product_get(store=request.store, product_id=id)
    return file_out(services.product_file_add(product=product, upload=file))


router_refuse_other_methods(router)

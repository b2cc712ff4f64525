import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename, slugify

from stall.core.ids import new_id
from stall.core.money import amount_validate, currency_normalize
from stall.stores.models import Store

from .errors import BundleInvalid, FileInvalid, ProductHasNoFiles, ProductInvalid
from .models import (
    BUNDLE_PART_KINDS,
    BundleItem,
    PriceType,
    Product,
    ProductFile,
    ProductKind,
    ProductStatus,
)

_UNSET = object()
RESERVED_PRODUCT_SLUGS = {"posts", "allowance", "cart"}  # /s/<store>/<these>/ are pages of their own


@dataclass(frozen=True)
class KindTerms:
    """What a product kind owned by a domain above catalog keeps beyond the product row (a service's
    slots and days before a delivery is accepted), registered in that app's AppConfig.ready.
    ``set(product=, **terms)`` writes them in product_create's (or product_update's) transaction and
    raises a StallError on bad input; ``out(product)`` is their API shape."""

    set: Callable[..., object]
    out: Callable[[Product], dict | None]


_KIND_TERMS: dict[str, KindTerms] = {}


def product_kind_terms_register(kind: str, terms: KindTerms) -> None:
    _KIND_TERMS[kind] = terms


def product_kind_terms_out(product: Product) -> dict | None:
    terms = _KIND_TERMS.get(product.kind)
    return terms.out(product) if terms is not None else None


def _kind_terms_set(product: Product, terms: dict | None, *, creating: bool) -> None:
    registered = _KIND_TERMS.get(product.kind)
    if registered is None:
        if terms is not None:
            kinds = " or ".join(sorted(_KIND_TERMS))
            raise ProductInvalid(f"Only a {kinds} product has these terms.", param="kind")
        return
    if terms is not None or creating:
        # A new product of the kind always gets its terms (the defaults when none were sent).
        registered.set(product=product, **(terms or {}))


def _check_prices(product: Product) -> None:
    amount_validate(product.amount, param="amount")
    if product.suggested_amount is not None:
        amount_validate(product.suggested_amount, param="suggested_amount")
        if product.price_type != PriceType.PAY_WHAT_YOU_WANT:
            raise ProductInvalid("Only a pay-what-you-want product has a suggested amount.", param="suggested_amount")
        if product.suggested_amount < product.amount:
            raise ProductInvalid("The suggested amount cannot be below the minimum.", param="suggested_amount")


def _validated(product: Product) -> Product:
    if product.price_type not in PriceType.values:
        raise ProductInvalid(f"Price type must be one of: {', '.join(PriceType.values)}.", param="price_type")
    if product.status not in ProductStatus.values:
        raise ProductInvalid(f"Status must be one of: {', '.join(ProductStatus.values)}.", param="status")
    _check_prices(product)
    if not product.slug:
        product.slug = slugify(product.name)[:80] or product.pk.lower()
    if product.slug in RESERVED_PRODUCT_SLUGS:
        # /s/<store>/posts/ and friends are pages of their own; a product there would be unreachable.
        raise ProductInvalid(f"“{product.slug}” is reserved; choose another address.", param="slug")
    try:
        product.full_clean(exclude=["store", "cover"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ProductInvalid(messages[0], param=None if field == "__all__" else field) from None
    return product


def _publish_check(product: Product) -> None:
    """A published download with nothing to download would take a buyer's money for nothing."""
    if product.kind == ProductKind.DOWNLOAD and product.status == ProductStatus.PUBLISHED and not product.files.exists():
        raise ProductHasNoFiles()
    if product.kind == ProductKind.BUNDLE and product.status == ProductStatus.PUBLISHED and not product.bundle_items.exists():
        raise BundleInvalid("Add at least one product to the bundle before publishing it.", param="parts")


def bundle_parts_set(*, bundle: Product, part_ids) -> list[Product]:
    """Make ``part_ids`` (products of the bundle's store) the bundle's parts, in that order. A
    bundle cannot contain itself, another bundle, or anything but downloads. Call inside a
    transaction."""
    if bundle.kind != ProductKind.BUNDLE:
        raise BundleInvalid("Only a bundle has parts.", param="parts")
    if not isinstance(part_ids, list | tuple) or not all(isinstance(pid, str) for pid in part_ids):
        raise BundleInvalid("Parts are a list of product ids.", param="parts")
    ids = list(dict.fromkeys(part_ids))
    if len(ids) > 100:
        raise BundleInvalid("A bundle holds at most 100 products.", param="parts")
    if bundle.pk in ids:
        raise BundleInvalid("A bundle cannot contain itself.", param="parts")
    found = Product.objects.filter(store_id=bundle.store_id, pk__in=ids).in_bulk()
    for pid in ids:
        part = found.get(pid)
        if part is None:
            raise BundleInvalid(f"No such product: {pid}.", param="parts", code="resource_missing")
        if part.kind == ProductKind.BUNDLE:
            raise BundleInvalid(f"A bundle cannot contain another bundle ({part.name}).", param="parts")
        if part.kind not in BUNDLE_PART_KINDS:
            raise BundleInvalid(f"Only downloads can be in a bundle; {part.name} is not one.", param="parts")
    BundleItem.objects.filter(bundle=bundle).delete()
    BundleItem.objects.bulk_create([BundleItem(bundle=bundle, part=found[pid]) for pid in ids])
    return [found[pid] for pid in ids]


def _save(product: Product) -> None:
    try:
        with transaction.atomic():
            product.save()
    except IntegrityError:
        raise ProductInvalid("Another product of this store has that address.", param="slug") from None


@transaction.atomic
def product_create(
    *,
    store: Store,
    name: str,
    amount: int = 0,
    price_type: str = PriceType.FIXED,
    suggested_amount: int | None = None,
    currency: str | None = None,
    description: str = "",
    status: str = ProductStatus.DRAFT,
    slug: str = "",
    cover=None,
    download_limit: int | None = None,
    kind: str = ProductKind.DOWNLOAD,
    files=(),
    parts=None,
    terms: dict | None = None,
) -> Product:
    """A product, with ``files`` (uploads) attached in the same transaction, so a download can be
    created published in one step; published with no files, it is refused (``product_has_no_files``).
    ``terms``: what the kind's owner keeps for it (a service's ``slots``, ``auto_accept_days``)."""
    if kind not in ProductKind.values:
        raise ProductInvalid(f"Kind must be one of: {', '.join(ProductKind.values)}.", param="kind")
    for upload in files:
        try:
            _upload_check(upload)
        except FileInvalid as exc:
            raise FileInvalid(f"{getattr(upload, 'name', None) or 'A file'}: {exc.message}", param="files") from None
    if currency is not None and currency_normalize(currency) != store.currency:
        raise ProductInvalid(f"This store sells in {store.currency}.", param="currency", code="currency_mismatch")
    product = Product(
        store=store,
        kind=kind,
        name=(name or "").strip(),
        slug=slug or "",
        description=description or "",
        price_type=price_type,
        amount=amount,
        suggested_amount=suggested_amount,
        currency=store.currency,
        status=status,
        download_limit=download_limit or settings.STALL_DOWNLOAD_LIMIT,
    )
    if cover:
        product.cover = cover
    _validated(product)
    if parts is not None and kind != ProductKind.BUNDLE:
        raise BundleInvalid("Only a bundle has parts.", param="parts")
    _save(product)
    _kind_terms_set(product, terms, creating=True)
    if parts is not None:
        bundle_parts_set(bundle=product, part_ids=parts)
    stored = []
    try:
        for upload in files:
            stored.append(product_file_add(product=product, upload=upload))
        _publish_check(product)
    except Exception:
        _stored_delete(stored)  # the rows roll back with the transaction; the bytes would stay
        raise
    return product


def _stored_delete(files: list[ProductFile]) -> None:
    storage = storages["private"]
    for file in files:
        storage.delete(file.storage_name)


@transaction.atomic
def product_update(
    *,
    product: Product,
    name=_UNSET,
    amount=_UNSET,
    price_type=_UNSET,
    suggested_amount=_UNSET,
    currency=_UNSET,
    description=_UNSET,
    status=_UNSET,
    slug=_UNSET,
    cover=_UNSET,
    download_limit=_UNSET,
    parts=_UNSET,
    terms=_UNSET,
) -> Product:
    product = Product.objects.select_for_update().get(pk=product.pk)
    if terms is not _UNSET:
        _kind_terms_set(product, terms, creating=False)
    if parts is not _UNSET and parts is not None:
        bundle_parts_set(bundle=product, part_ids=parts)
    was_published = product.status == ProductStatus.PUBLISHED
    if currency is not _UNSET and currency is not None and currency_normalize(currency) != product.currency:
        raise ProductInvalid(f"This store sells in {product.currency}.", param="currency", code="currency_mismatch")
    changes = {
        "name": name, "amount": amount, "price_type": price_type, "suggested_amount": suggested_amount,
        "description": description, "status": status, "slug": slug, "download_limit": download_limit,
    }
    for field, value in changes.items():
        if value is not _UNSET:
            setattr(product, field, value.strip() if field == "name" and isinstance(value, str) else value)
    if product.price_type == PriceType.FIXED and price_type is not _UNSET:
        product.suggested_amount = None
    if cover is not _UNSET and cover:
        product.cover = cover
    _validated(product)
    if not was_published:
        # Only the step to published is checked: a product published before this rule, with no
        # files, can still be edited (and given files) without being taken off the store first.
        _publish_check(product)
    _save(product)
    return product


def product_archive(*, product: Product) -> Product:
    return product_update(product=product, status=ProductStatus.ARCHIVED)


def _upload_check(upload) -> None:
    if upload is None or not getattr(upload, "name", ""):
        raise FileInvalid("Choose a file to upload.", param="file")
    if not upload.size:
        raise FileInvalid("The file is empty.", param="file")
    if upload.size > settings.STALL_MAX_UPLOAD_BYTES:
        raise FileInvalid(f"Files can be at most {settings.STALL_MAX_UPLOAD_BYTES // (1024 * 1024)} MB.", param="file")


def product_file_add(*, product: Product, upload, name: str | None = None) -> ProductFile:
    """Store an uploaded file privately and attach it to the product.

    The upload is copied to storage in chunks (Django's storage API streams from the temporary
    file), so a large file is never held in memory whole.
    """
    _upload_check(upload)
    size = upload.size
    display_name = os.path.basename(name or upload.name)[:255]
    safe = get_valid_filename(display_name) or "file"
    storage = storages["private"]
    stored = storage.save(f"products/{product.store_id}/{new_id('f')}/{safe}", upload)
    content_type = getattr(upload, "content_type", None) or mimetypes.guess_type(display_name)[0] or "application/octet-stream"
    try:
        with transaction.atomic():
            return ProductFile.objects.create(
                product=product, name=display_name, storage_name=stored, size=size, content_type=content_type[:120]
            )
    except Exception:
        storage.delete(stored)
        raise


@transaction.atomic
def product_file_delete(*, file: ProductFile) -> None:
    """Delete a file; the last file of a published download stays (unpublish it first), so the
    store never sells a download with nothing in it. The product row is locked so a publish and
    a delete at once cannot both pass."""
    product = Product.objects.select_for_update().get(pk=file.product_id)
    if (product.kind == ProductKind.DOWNLOAD and product.status == ProductStatus.PUBLISHED
            and not product.files.exclude(pk=file.pk).exists()):
        raise ProductHasNoFiles(
            "This is the product's only file and the product is published: add another file, or set it "
            "to draft, before deleting it.", param="file",
        )
    name = file.storage_name
    file.delete()
    transaction.on_commit(lambda: storages["private"].delete(name))

from django.utils.translation import gettext_noop

from stall.core.errors import InvalidRequest, NotFound


class ProductNotFound(NotFound):
    default_message = gettext_noop("No such product.")


class ProductInvalid(InvalidRequest):
    code = "invalid_product"


class FileInvalid(InvalidRequest):
    code = "invalid_file"


class ProductHasNoFiles(ProductInvalid):
    code = "product_has_no_files"
    default_message = gettext_noop("Add at least one file before publishing: buyers of a download get its files.")

    def __init__(self, message: str | None = None, *, param: str | None = "status", code: str | None = None):
        super().__init__(message, param=param, code=code)


class BundleInvalid(ProductInvalid):
    code = "invalid_bundle"

from stall.core.errors import InvalidRequest, NotFound


class ProductNotFound(NotFound):
    default_message = "No such product."


class ProductInvalid(InvalidRequest):
    code = "invalid_product"


class FileInvalid(InvalidRequest):
    code = "invalid_file"

from stall.core.errors import InvalidRequest, NotFound


class StoreNotFound(NotFound):
    default_message = "No such store."


class StoreInvalid(InvalidRequest):
    code = "invalid_store"

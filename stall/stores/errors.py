from django.utils.translation import gettext_noop

from stall.core.errors import InvalidRequest, NotFound


class StoreNotFound(NotFound):
    default_message = gettext_noop("No such store.")


class StoreInvalid(InvalidRequest):
    code = "invalid_store"

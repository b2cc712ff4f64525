"""Domain errors with stable codes.

Every app raises subclasses of :class:`StallError`. One handler turns them into the API's error
object (``{"error": {"code", "message", "param"}}``) and the pages show ``message`` next to the
field named by ``param``; nobody sees a traceback.
"""

from django.utils.translation import gettext_noop


class StallError(Exception):
    code = "invalid_request"
    status = 400
    default_message = gettext_noop("The request is not valid.")

    def __init__(self, message: str | None = None, *, param: str | None = None, code: str | None = None):
        self.message = message or self.default_message
        self.param = param
        if code:
            self.code = code
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "param": self.param}}


class InvalidRequest(StallError):
    pass


class NotFound(StallError):
    code = "resource_missing"
    status = 404
    default_message = gettext_noop("No such object.")


class PermissionDenied(StallError):
    code = "permission_denied"
    status = 403
    default_message = gettext_noop("You may not do that.")


class Conflict(StallError):
    code = "conflict"
    status = 409
    default_message = gettext_noop("The request conflicts with the current state of the object.")


class PaymentError(StallError):
    code = "payment_failed"
    status = 402
    default_message = gettext_noop("The payment did not go through.")

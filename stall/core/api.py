"""What every API v1 router shares: key authentication, the error object, cursor pagination."""

import logging

from django.http import Http404
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer

from stall.core.errors import StallError

logger = logging.getLogger("stall.api")


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request, token):
        from stall.integrations.services import api_key_authenticate

        key = api_key_authenticate(secret=token)
        if key is None:
            return None
        request.store = key.store
        request.api_key = key
        return key


class ErrorBody(Schema):
    code: str
    message: str
    param: str | None = None


class Error(Schema):
    error: ErrorBody


class Money(Schema):
    amount: int
    currency: str


class ListParams(Schema):
    limit: int = Field(10, ge=1, le=100, description="How many objects to return, 1 to 100.")
    starting_after: str | None = Field(None, max_length=40, description="An id from the previous page; the page after it.")


def paginate(qs, params: ListParams, serialize) -> dict:
    """Newest first, keyed on the time-ordered primary key: a stable cursor even while rows arrive."""
    qs = qs.order_by("-pk")
    if params.starting_after:
        qs = qs.filter(pk__lt=params.starting_after)
    rows = list(qs[: params.limit + 1])
    return {"object": "list", "data": [serialize(r) for r in rows[: params.limit]], "has_more": len(rows) > params.limit}


def error_response(api: NinjaAPI, request, status: int, code: str, message: str, param: str | None = None):
    return api.create_response(request, {"error": {"code": code, "message": message, "param": param}}, status=status)


def _param_from_loc(loc) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "file", "payload", "data", "params")]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(StallError)
    def stall_error(request, exc: StallError):
        return error_response(api, request, exc.status, exc.code, exc.message, exc.param)

    @api.exception_handler(NinjaValidationError)
    def validation_error(request, exc: NinjaValidationError):
        first = exc.errors[0] if exc.errors else {}
        param = _param_from_loc(first.get("loc", ()))
        message = first.get("msg", "Invalid request.")
        if first.get("type") == "missing":
            message = f"Missing required parameter: {param}." if param else "Missing required parameter."
        elif param:
            message = f"Invalid {param}: {message}"
        return error_response(api, request, 400, "invalid_request", message, param)

    @api.exception_handler(AuthenticationError)
    def auth_error(request, exc):
        return error_response(api, request, 401, "unauthorized", "Send a valid secret API key: Authorization: Bearer sk_…")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return error_response(api, request, 404, "resource_missing", "No such object.")

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        return error_response(api, request, exc.status_code, "invalid_request", str(exc))

    @api.exception_handler(Exception)
    def server_error(request, exc):
        logger.exception("API error on %s %s", request.method, request.path)
        return error_response(api, request, 500, "api_error", "Something went wrong on our side; it has been logged.")

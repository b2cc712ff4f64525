"""What every API v1 router shares: input types, the error object, cursor pagination.

Input schemas use strict types: ``"amount": "5"``, ``5.0`` and ``true`` are refused rather than
coerced, because an integrator who sends them has a bug we should tell them about. Checks that
carry one of our error codes (``invalid_amount``, ``invalid_currency``) raise a
``PydanticCustomError`` whose type is that code; the validation handler below turns its type into
the error object's ``code`` and its location into ``param``.
"""

import inspect
import logging
import re
from datetime import datetime
from typing import Annotated

from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, NinjaAPI, Router, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from pydantic import AfterValidator, ConfigDict, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from stall.core.errors import StallError
from stall.core.idempotency import PARSED_JSON
from stall.core.limits import RateLimited
from stall.core.money import MAX_AMOUNT, amount_validate, currency_normalize

logger = logging.getLogger("stall.api")


class JsonBodyParser(Parser):
    """Ninja's JSON parser, which takes the body the idempotency middleware already parsed
    (a request with an Idempotency-Key) instead of parsing it a second time."""

    _absent = object()

    def parse_body(self, request):
        parsed = getattr(request, PARSED_JSON, self._absent)
        return super().parse_body(request) if parsed is self._absent else parsed


# --- Input types ----------------------------------------------------------------------------


def _text(value: str) -> str:
    # Neither database stores NUL in text (PostgreSQL refuses it outright) and a lone surrogate
    # cannot be encoded as UTF-8; both would otherwise surface as a server error on save.
    if "\x00" in value:
        raise PydanticCustomError("invalid_request", "Text cannot contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_request", "Text must be valid Unicode.") from None
    return value


def _amount(value: int) -> int:
    try:
        return amount_validate(value)
    except StallError as exc:
        raise PydanticCustomError(exc.code, exc.message) from None


def _currency(value: str) -> str:
    try:
        return currency_normalize(value)
    except StallError as exc:
        raise PydanticCustomError(exc.code, exc.message) from None


_OBJECT_ID = re.compile(r"[a-z]{1,8}_[0-9a-z]{1,40}")

# What the checks above enforce, said in the OpenAPI document too, so that a client (or a fuzzer)
# reading it knows what is refused. They only describe: the validators keep their own error codes.
_HAS_NUL = {"type": "string", "pattern": r"\x00"}  # "not" this: cheaper to generate than ^[^\x00]*$
_NOT_BLANK_PATTERN = r"\S"  # a pattern is a search: some character that is not a space
_OBJECT_ID_PATTERN = f"^{_OBJECT_ID.pattern}$"
# The shape only: listing every ISO 4217 code would put an enum of ~300 (where only the store's
# currency is ever accepted) into each generated client. Stripe's document does the same.
_CURRENCY = {"pattern": r"^\s*[A-Za-z]{3}\s*$", "format": "currency"}
SLUG_PATTERN = r"^[-a-zA-Z0-9_]*$"
"""A page address as the request may give it: Django's slug characters; empty to make one."""


def _object_id(value: str) -> str:
    if not _OBJECT_ID.fullmatch(value):
        raise PydanticCustomError("resource_missing", "No such object.")
    return value


def _cursor(value: str) -> str:
    if not _OBJECT_ID.fullmatch(value):
        raise PydanticCustomError("invalid_request", "Invalid starting_after: send the id of an object from the previous page.")
    return value


Text = Annotated[StrictStr, AfterValidator(_text), Field(json_schema_extra={"not": _HAS_NUL})]
"""A string from the client: a JSON string (never a number coerced), storable as given."""

NotBlank = Field(json_schema_extra={"minLength": 1, "pattern": _NOT_BLANK_PATTERN})
"""Documents a ``Text`` the service refuses when blank (``name: Annotated[Text, NotBlank]``)."""

Amount = Annotated[
    StrictInt, AfterValidator(_amount),
    Field(json_schema_extra={"minimum": 0, "maximum": MAX_AMOUNT}),
]
"""Minor units: a JSON integer from 0 to 999,999,999,999."""

Currency = Annotated[StrictStr, AfterValidator(_currency), Field(json_schema_extra=_CURRENCY)]
"""A three-letter ISO 4217 code, any case; normalized to upper case."""

ObjectId = Annotated[
    StrictStr, AfterValidator(_object_id), Field(json_schema_extra={"pattern": _OBJECT_ID_PATTERN})
]
"""An id of ours (``prod_…``). A malformed one is an object that does not exist."""


class InputSchema(Schema):
    """Request bodies refuse parameters they do not know, the way Stripe does: a typo
    (``"ammount"``) is an error rather than a silently ignored field."""

    model_config = ConfigDict(extra="forbid")


# --- Output ---------------------------------------------------------------------------------


class ErrorBody(Schema):
    code: str
    message: str
    param: str | None = None


class Error(Schema):
    error: ErrorBody


class Money(Schema):
    amount: int
    currency: str


def timestamp(value: datetime | None) -> int | None:
    """Times are Unix seconds, as Stripe's are."""
    return int(value.timestamp()) if value is not None else None


def responses(schema) -> dict:
    """An endpoint's responses for the OpenAPI document: the object, or the error object."""
    return {200: schema, 400: Error, 401: Error, 402: Error, 404: Error, 409: Error, 429: Error}


# --- Lists ----------------------------------------------------------------------------------


class ListParams(Schema):
    limit: int = Field(10, ge=1, le=100, description="How many objects to return, 1 to 100.")
    starting_after: Annotated[str, AfterValidator(_cursor)] | None = Field(
        None, description="An id from the previous page; the page after it.",
        json_schema_extra={"pattern": _OBJECT_ID_PATTERN},
    )


def paginate(qs, params: ListParams, serialize) -> dict:
    """Newest first, keyed on the time-ordered primary key: a stable cursor even while rows arrive."""
    qs = qs.order_by("-pk")
    if params.starting_after:
        qs = qs.filter(pk__lt=params.starting_after)
    rows = list(qs[: params.limit + 1])
    return {"object": "list", "data": [serialize(r) for r in rows[: params.limit]], "has_more": len(rows) > params.limit}


# --- Errors ---------------------------------------------------------------------------------


def error_response(api: NinjaAPI, request, status: int, code: str, message: str, param: str | None = None):
    return api.create_response(request, {"error": {"code": code, "message": message, "param": param}}, status=status)


_LOCATIONS = ("body", "query", "path", "form", "file", "header", "cookie")
_OUR_CODES = {"invalid_amount", "invalid_currency", "resource_missing", "invalid_request"}


def _param_from_loc(loc) -> str | None:
    """Ninja's error location as the request's parameter name: ("body", "payload", "items", 0,
    "product") → "items[0].product"; ("query", "limit") → "limit"; ("file", "file") → "file"."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
        if loc[0] == "body":
            parts = parts[1:]  # the view's argument that holds the whole body
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


def _validation_error_body(errors: list[dict]) -> tuple[int, str, str, str | None]:
    """(status, code, message, param) for the first of Ninja's validation errors."""
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    param = _param_from_loc(loc)
    kind = first.get("type", "")
    message = first.get("msg", "Invalid request.")
    if kind in _OUR_CODES:
        status = 404 if kind == "resource_missing" and loc[:1] == ("path",) else 400
        return status, kind, message, param
    if kind == "missing":
        if param is None:
            return 400, "invalid_request", "Send a JSON object as the request body.", None
        return 400, "invalid_request", f"Missing required parameter: {param}.", param
    if kind == "extra_forbidden":
        return 400, "invalid_request", f"Received unknown parameter: {param}.", param
    if kind in ("model_attributes_type", "dict_type", "model_type") and param is None:
        return 400, "invalid_request", "The request body must be a JSON object.", None
    return 400, "invalid_request", f"Invalid {param}: {message}" if param else message, param


def router_refuse_other_methods(router: Router) -> None:
    """Answer a method a path does not support with 405 and the error object.

    Ninja answers such a request itself with a plain-text 405; registering the other methods on
    each path lets the answer be the same error object as every other error. Call this after the
    router's last endpoint. The answer comes before authentication: which methods a path takes
    is in the public OpenAPI document anyway.
    """
    for path, view in list(router.path_operations.items()):
        allowed = sorted({method for op in view.operations for method in op.methods})
        others = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") if m not in allowed]

        router.add_api_operation(path, others, _refuse_view(path, allowed), auth=None, include_in_schema=False)


def _refuse_view(path: str, allowed: list[str]):
    allow = ", ".join(allowed)

    def refuse(request, **path_params):
        message = f"{request.method} is not allowed here; use {allow}."
        response = JsonResponse({"error": {"code": "method_not_allowed", "message": message, "param": None}}, status=405)
        response.headers["Allow"] = allow
        return response

    # Ninja reads the path's parameters from the view's signature; declare them as plain strings.
    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in re.findall(r"\{(?:\w+:)?(\w+)\}", path)
    ]
    refuse.__signature__ = inspect.Signature(params)
    return refuse


def install_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(StallError)
    def stall_error(request, exc: StallError):
        response = error_response(api, request, exc.status, exc.code, exc.message, exc.param)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @api.exception_handler(NinjaValidationError)
    def validation_error(request, exc: NinjaValidationError):
        status, code, message, param = _validation_error_body(exc.errors)
        return error_response(api, request, status, code, message, param)

    @api.exception_handler(AuthenticationError)
    def auth_error(request, exc):
        if request.headers.get("Authorization"):
            message = "The API key is not valid: it is mistyped, revoked, or not a secret key (sk_…)."
        else:
            message = "Send your secret API key: Authorization: Bearer sk_…"
        response = error_response(api, request, 401, "unauthorized", message)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return error_response(api, request, 404, "resource_missing", "No such object.")

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        message = str(exc)
        if exc.status_code == 400 and message.startswith("Cannot parse request body"):
            message = "The request body is not valid JSON."
        return error_response(api, request, exc.status_code, "invalid_request", message)

    @api.exception_handler(RequestDataTooBig)
    def too_big(request, exc):
        return error_response(api, request, 413, "request_too_large", "The request body is too large.")

    @api.exception_handler(MultiPartParserError)
    def bad_multipart(request, exc):
        return error_response(api, request, 400, "invalid_request", f"The multipart body could not be read: {exc}")

    @api.exception_handler(BadRequest)
    @api.exception_handler(SuspiciousOperation)
    def bad_request(request, exc):
        return error_response(api, request, 400, "invalid_request", "Bad request.")

    @api.exception_handler(Exception)
    def server_error(request, exc):
        logger.exception("API error on %s %s", request.method, request.path)
        return error_response(api, request, 500, "api_error", "Something went wrong on our side; it has been logged.")

"""``Idempotency-Key`` for every API POST, the way Stripe does it.

The first response to a key is stored (scoped to the credential that sent it) and replayed for
any later request with that key and the same method, path and body. A request with no
``Authorization`` header (the license endpoints, whose credential is the key in the body) is
scoped to its own request: callers who cannot be told apart must not answer each other's keys. The same key with a different
request is a 409; a request arriving while the first is still running is a 409 too, until a
minute has passed with no answer (its process died) and the key is taken over. Responses
that are server errors are not stored, so a retry after a crash runs again. Records are dropped
after a day by a periodic task.

A JSON body is parsed here once, to hash it in a canonical form (the same object with its keys in
another order is the same request), and the parse is kept on the request for the API's parser
(``JsonBodyParser`` in ``core.api``), which would otherwise parse it again. A long body (over
``CANONICAL_UNDER``: a batch of usage events, 200 KB for a thousand) is hashed as the bytes sent:
writing it again with sorted keys cost a tenth of such a request. A client retrying sends the bytes
it sent before (the Python client re-encodes the same dict); one that re-encodes a long body with
its keys in another order hears 409 ``idempotency_key_reused`` rather than the replay: it is told,
and nothing runs twice. A record of a long body stored under its canonical hash (before the
change, kept a day) still matches it.
"""

import hashlib
import json
import zlib
from contextlib import nullcontext
from datetime import timedelta

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, connection, transaction
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone

from .models import IdempotencyRecord

API_PREFIX = "/api/v1/"
ABANDONED_AFTER_SECONDS = 60
COMPRESS_OVER = 2048  # bytes of answer
CANONICAL_UNDER = 32 * 1024  # bytes of JSON body hashed in its canonical form; longer, as sent
PARSED_JSON = "_stall_parsed_json"  # the request attribute holding the parsed JSON body


def _error(status: int, code: str, message: str, param: str | None = "Idempotency-Key") -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "param": param}}, status=status)


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or key is None or not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        if not key.strip() or len(key) > 255 or "\x00" in key:
            return _error(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters.")
        try:
            request_hash = self._request_hash(request)
        except RequestDataTooBig:
            return _error(413, "request_too_large", "The request body is too large.", param=None)
        except MultiPartParserError as exc:
            return _error(400, "invalid_request", f"The multipart body could not be read: {exc}", param=None)
        credential = request.headers.get("Authorization") or f"anonymous {request_hash}"
        scope = hashlib.sha256(credential.encode()).hexdigest()

        record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if record is None:
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(scope=scope, key=key, request_hash=request_hash)
            except IntegrityError:
                record = IdempotencyRecord.objects.get(scope=scope, key=key)
            else:
                return self._run_and_store(request, record)
        if record.request_hash != request_hash and record.request_hash != self._canonical_hash(request):
            return _error(409, "idempotency_key_reused", "This Idempotency-Key was used with a different request.")
        if record.status_code is None:
            # A process that died mid-request leaves its record unfinished. After a minute the key
            # is taken over by the next request (the services it calls are idempotent themselves).
            stale_before = timezone.now() - timedelta(seconds=ABANDONED_AFTER_SECONDS)
            if record.created_at < stale_before and IdempotencyRecord.objects.filter(
                pk=record.pk, status_code__isnull=True, created_at=record.created_at
            ).update(created_at=timezone.now()):
                return self._run_and_store(request, record)
            return _error(409, "idempotency_key_in_use", "A request with this Idempotency-Key is still being processed.")
        body = bytes(record.body or b"")
        if record.compressed:
            body = zlib.decompress(body)
        response = HttpResponse(body, status=record.status_code, content_type=record.content_type or "application/json")
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def _run_and_store(self, request, record: IdempotencyRecord):
        try:
            response = self.get_response(request)
        except BaseException:
            record.delete()
            raise
        # Nor a 429: the request did nothing, and its retry after Retry-After must run, not replay.
        if response.status_code >= 500 or response.status_code in (401, 429) or getattr(response, "streaming", False):
            record.delete()
            return response
        record.status_code = response.status_code
        record.content_type = response.headers.get("Content-Type", "")[:100]
        body = response.content
        # Compressed when long: fast (0.1 ms for a 50 KB batch answer, which shrinks to a tenth or
        # less), and the record is written, and kept, a day in the database for every POST.
        record.compressed = len(body) > COMPRESS_OVER
        record.body = zlib.compress(body, 1) if record.compressed else body
        # On SQLite in a transaction, though one statement: a transaction waits its turn in the
        # write queue (stall.core.sqlite), where a lone statement waits in SQLite's busy handler,
        # which sleeps in growing steps and, while batches of usage events held the lock back to
        # back, woke to find it taken again and again (4 threads sending batches: 19-26 ms median
        # for this save, 0.6 ms queued). PostgreSQL locks the row alone: no need.
        with transaction.atomic() if connection.vendor == "sqlite" else nullcontext():
            record.save(update_fields=["status_code", "content_type", "body", "compressed"])
        return response

    @staticmethod
    def _request_hash(request) -> str:
        digest = hashlib.sha256()
        digest.update(f"{request.method} {request.path}?{request.META.get('QUERY_STRING', '')}\n".encode())
        content_type = request.content_type or ""
        if content_type.startswith("multipart/"):
            # Hash what the form holds, not its raw bytes: the boundary differs between two sends
            # of the same file, and request.body would pull the whole upload into memory. Django
            # parses the form once (large files spool to a temporary file) and the view reuses
            # that parse; each file is read back in chunks.
            for name, values in sorted(request.POST.lists()):
                digest.update(json.dumps([name, values]).encode())
            for field, files in sorted(request.FILES.lists()):
                for upload in files:
                    digest.update(json.dumps([field, upload.name, upload.size]).encode())
                    for chunk in upload.chunks():
                        digest.update(chunk)
                    upload.seek(0)
        elif content_type == "application/json":
            body = request.body
            try:
                parsed = json.loads(body or b"null")
            except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: the bytes will do
                digest.update(body)
            else:
                if body:  # an empty body is no JSON for the API's parser
                    setattr(request, PARSED_JSON, parsed)
                if len(body) < CANONICAL_UNDER:
                    digest.update(json.dumps(parsed, sort_keys=True).encode())
                else:
                    digest.update(body)
        else:
            digest.update(request.body)
        return digest.hexdigest()

    @staticmethod
    def _canonical_hash(request) -> str | None:
        """The hash a long JSON request had before long bodies were hashed as sent (see the
        module's docstring), for records stored then; None for other requests. Only asked on a
        mismatch."""
        if request.content_type != "application/json" or len(request.body) < CANONICAL_UNDER:
            return None
        if not hasattr(request, PARSED_JSON):  # not JSON: hashed as sent then too
            return None
        digest = hashlib.sha256()
        digest.update(f"{request.method} {request.path}?{request.META.get('QUERY_STRING', '')}\n".encode())
        digest.update(json.dumps(getattr(request, PARSED_JSON), sort_keys=True).encode())
        return digest.hexdigest()

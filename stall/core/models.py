from django.db import models


class IdempotencyRecord(models.Model):
    """The first response to a POST with an Idempotency-Key, replayed for later identical requests."""

    scope = models.CharField(max_length=64)  # hash of the credential that made the request
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(null=True)
    # The body zlib-compressed (a long answer: a batch of usage events answers 50 KB, most of it
    # the same few words, kept a day); None or False, as sent (records made before this column).
    compressed = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="core_idempotency_unique_key")]

from django.db import models

from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class ApiKey(models.Model):
    """A store's secret API key. Only a SHA-256 of the secret is kept; the secret is shown once."""

    id = PrefixedIdField(prefix="key")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16)  # the first characters, to tell keys apart in lists
    secret_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

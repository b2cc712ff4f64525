from django.db import models

from stall.core.ids import PrefixedIdField
from stall.stores.models import Store


class Customer(models.Model):
    """Someone who bought from a store, known by email."""

    id = PrefixedIdField(prefix="cus")
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="customers")
    email = models.EmailField()
    name = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "email"], name="audience_customer_unique_email")]

    def __str__(self) -> str:
        return self.email

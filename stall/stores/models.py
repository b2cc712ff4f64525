from django.conf import settings
from django.db import models

from stall.core.ids import PrefixedIdField


class Store(models.Model):
    id = PrefixedIdField(prefix="store")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stores")
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    bio = models.TextField(blank=True, max_length=5000)
    avatar = models.ImageField(upload_to="avatars/", blank=True)
    currency = models.CharField(max_length=3, default="USD")
    support_email = models.EmailField(blank=True)
    # When the creator copied the store's link or said they shared it: the last first step.
    link_shared_at = models.DateTimeField(null=True, blank=True)
    # The sites allowed to show this store's checkout in an overlay (embed.js): one origin a line,
    # as stores.services.embed_origins_clean wrote them. Empty: no site may frame it.
    embed_origins = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def embed_origin_list(self) -> list[str]:
        return self.embed_origins.split()

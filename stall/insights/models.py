"""Daily rollups of what a store sold, so that the overview and its charts read a few hundred rows
instead of every order, and cookieless page-view counters."""

from django.db import models

from stall.stores.models import Store


class DailyRollup(models.Model):
    """What moved a store's (real money) balance on one UTC day, per currency, product kind,
    product and rail. Rebuilt from the ledger by ``rollups.rollups_rebuild_day``: never edited
    by hand, so it equals what the ledger says for that day."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=24)
    product_id = models.CharField(max_length=64, blank=True)  # "" for money of no product
    rail = models.CharField(max_length=24, blank=True)
    gross = models.BigIntegerField(default=0)
    refunds = models.BigIntegerField(default=0)
    processing_fees = models.BigIntegerField(default=0)
    platform_fees = models.BigIntegerField(default=0)
    other = models.BigIntegerField(default=0)
    net = models.BigIntegerField(default=0)
    # Orders paid that day (an order of several products counts once, under its first line), and
    # how many of them were their customer's first order at the store.
    orders = models.IntegerField(default=0)
    new_customers = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["store", "day", "currency", "kind", "product_id", "rail"],
                                    name="insights_rollup_unique"),
        ]
        # Covering the breakdowns' grouped read, so a year of rows is read from the index alone.
        indexes = [models.Index(fields=["store", "currency", "day", "kind", "product_id", "rail", "gross", "net", "orders"],
                                name="insights_rollup_range")]


class DailyTotal(models.Model):
    """A store's day in one currency, all products together: the sum of its DailyRollup rows,
    written with them. The overview's figures and its chart read these (one row a day)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    currency = models.CharField(max_length=3)
    gross = models.BigIntegerField(default=0)
    refunds = models.BigIntegerField(default=0)
    processing_fees = models.BigIntegerField(default=0)
    platform_fees = models.BigIntegerField(default=0)
    other = models.BigIntegerField(default=0)
    net = models.BigIntegerField(default=0)
    orders = models.IntegerField(default=0)
    new_customers = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "currency", "day"], name="insights_total_unique")]


class PageViewDay(models.Model):
    """Page views of one page (the store's, a product's or a post's) on one UTC day."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    page = models.CharField(max_length=8)  # "store", "product", "post"
    object_id = models.CharField(max_length=64, blank=True)  # the product's id ("" for the store page)
    views = models.IntegerField(default=0)
    visitors = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "day", "page", "object_id"], name="insights_views_unique")]


class VisitorDay(models.Model):
    """That a visitor was seen on a page today: a salted hash of (salt of the day, store, page,
    address, user agent), with the salt rotated daily and forgotten, so nobody can be followed
    from one day to the next (Plausible's method). Rows older than today are deleted."""

    day = models.DateField()
    digest = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "digest"], name="insights_visitor_unique")]


class ReferrerDay(models.Model):
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    host = models.CharField(max_length=255)
    views = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["store", "day", "host"], name="insights_referrer_unique")]


class DailySalt(models.Model):
    """The random salt of one day's visitor hashes; deleted with the day."""

    day = models.DateField(unique=True)
    value = models.CharField(max_length=64)

"""Reads of insights: the overview of a date range against the range before it, the revenue
series for the chart, and the breakdowns, all from the daily rollups (a few hundred rows for a
year, whatever the number of orders); membership figures from stall.memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum

from stall.catalog.models import Product
from stall.memberships.selectors import membership_stats

from .models import DailyRollup, DailyTotal, PageViewDay, ReferrerDay

RANGES = {"7d": 7, "30d": 30, "90d": 90, "12m": 365}
TOTALS = ("gross", "net", "processing_fees", "platform_fees", "refunds", "orders", "new_customers")


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date  # included

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> DateRange:
        end = self.start - timedelta(days=1)
        return DateRange(end - timedelta(days=self.days - 1), end)


def date_range(*, key: str, today: date, start: date | None = None, end: date | None = None) -> DateRange:
    """A named range ending today ("7d", "30d", "90d", "12m"), or ``start``–``end`` ("custom")."""
    if key == "custom" and start and end:
        if end < start:
            start, end = end, start
        return DateRange(start, min(end, start + timedelta(days=3660)))
    if key == "12m":
        first = date(today.year - 1, today.month, 1)
        first = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return DateRange(first, today)
    return DateRange(today - timedelta(days=RANGES.get(key, 30) - 1), today)


@dataclass(frozen=True)
class Figures:
    gross: int = 0
    net: int = 0
    processing_fees: int = 0
    platform_fees: int = 0
    refunds: int = 0
    orders: int = 0
    new_customers: int = 0

    @property
    def fees(self) -> int:
        return self.processing_fees + self.platform_fees

    @property
    def average_order(self) -> int:
        return (self.gross + self.orders // 2) // self.orders if self.orders else 0


def _rows(store, currency: str, span: DateRange, model=DailyRollup):
    return model.objects.filter(store=store, currency=currency, day__gte=span.start, day__lte=span.end)


def figures(*, store, span: DateRange, currency: str | None = None) -> Figures:
    sums = _rows(store, currency or store.currency, span, DailyTotal).aggregate(**{f: Sum(f) for f in TOTALS})
    return Figures(**{f: sums[f] or 0 for f in TOTALS})


def change(now: int, before: int) -> Decimal | None:
    """Percentage change, one decimal; None when there was nothing before."""
    if not before:
        return None
    return (Decimal(now - before) * 100 / abs(before)).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass(frozen=True)
class Point:
    label: str  # "2026-03-05" or "2026-03"
    start: date
    gross: int
    net: int
    orders: int


def revenue_series(*, store, span: DateRange, by: str = "day", currency: str | None = None) -> list[Point]:
    """One point per day (or month) of the range, zero where nothing sold."""
    per_day = {
        row["day"]: row for row in _rows(store, currency or store.currency, span, DailyTotal).values("day", "gross", "net", "orders")
    }
    points: dict[date, list[int]] = {}
    day = span.start
    while day <= span.end:
        key = day if by == "day" else day.replace(day=1)
        bucket = points.setdefault(key, [0, 0, 0])
        row = per_day.get(day)
        if row:
            bucket[0] += row["gross"]
            bucket[1] += row["net"]
            bucket[2] += row["orders"]
        day += timedelta(days=1)
    return [Point(k.isoformat() if by == "day" else k.strftime("%Y-%m"), k, *v) for k, v in points.items()]


@dataclass(frozen=True)
class Slice:
    key: str
    label: str
    gross: int
    net: int
    orders: int


def breakdown_groups(*, store, span: DateRange, currency: str | None = None) -> list[dict]:
    """The range's rollups summed per (kind, product, rail): one scan, from which every breakdown
    is added up (a store has a few hundred such groups at most)."""
    return list(
        _rows(store, currency or store.currency, span).values("kind", "product_id", "rail")
        .annotate(gross=Sum("gross"), net=Sum("net"), orders=Sum("orders")).order_by()
    )


def breakdown(*, store, span: DateRange, by: str, currency: str | None = None, limit: int = 10,
              groups: list[dict] | None = None) -> list[Slice]:
    """Gross, net and orders per product, kind or rail, largest first (``groups``: what
    ``breakdown_groups`` read, to share one scan among the three breakdowns)."""
    field = {"product": "product_id", "kind": "kind", "rail": "rail"}[by]
    if groups is None:
        groups = breakdown_groups(store=store, span=span, currency=currency)
    summed: dict[str, dict] = {}
    for g in groups:
        row = summed.setdefault(g[field], {field: g[field], "gross": 0, "net": 0, "orders": 0})
        for name in ("gross", "net", "orders"):
            row[name] += g[name]
    rows = sorted(summed.values(), key=lambda r: (-r["gross"], r[field]))[:limit]
    names = {}
    if by == "product":
        names = dict(Product.objects.filter(store=store, pk__in=[r[field] for r in rows]).values_list("pk", "name"))
    labels = {"": "—", "sandbox": "Card (sandbox)", "stripe": "Card", "wallet": "Wallet", "tab": "Tab",
              "lightning": "Lightning"}
    return [
        Slice(r[field], names.get(r[field]) or labels.get(r[field]) or r[field].replace("_", " ").capitalize(),
              r["gross"], r["net"], r["orders"])
        for r in rows
    ]


def memberships(*, store):
    """Members, MRR and the last 30 days' joins and churn (stall.memberships' own figures), with
    the churn rate: members who ended over those at the start of the 30 days."""
    stats = membership_stats(store=store)
    start = stats.members - stats.new + stats.churned
    rate = (Decimal(stats.churned) * 100 / start).quantize(Decimal("0.1"), ROUND_HALF_UP) if start > 0 else None
    return stats, rate


@dataclass(frozen=True)
class PageFigures:
    page: str
    object_id: str
    label: str
    views: int
    visitors: int
    orders: int

    @property
    def conversion(self) -> Decimal | None:
        if not self.visitors:
            return None
        return (Decimal(self.orders) * 100 / self.visitors).quantize(Decimal("0.1"), ROUND_HALF_UP)


def page_views(*, store, span: DateRange, limit: int = 10) -> list[PageFigures]:
    """Views and unique visitors per page, with conversion: orders of the product (a post is sold
    as its product) over its visitors."""
    rows = list(
        PageViewDay.objects.filter(store=store, day__gte=span.start, day__lte=span.end)
        .values("page", "object_id").annotate(views=Sum("views"), visitors=Sum("visitors")).order_by("-views")[:limit]
    )
    ids = [r["object_id"] for r in rows if r["object_id"]]
    names = dict(Product.objects.filter(store=store, pk__in=ids).values_list("pk", "name"))
    sold = dict(
        _rows(store, store.currency, span).filter(product_id__in=ids).values("product_id")
        .annotate(n=Sum("orders")).values_list("product_id", "n")
    )
    return [
        PageFigures(r["page"], r["object_id"], names.get(r["object_id"], "Store page" if r["page"] == "store" else "—"),
                    r["views"], r["visitors"], sold.get(r["object_id"], 0) if r["object_id"] else 0)
        for r in rows
    ]


def top_referrers(*, store, span: DateRange, limit: int = 10) -> list[tuple[str, int]]:
    return list(
        ReferrerDay.objects.filter(store=store, day__gte=span.start, day__lte=span.end)
        .values("host").annotate(views=Sum("views")).order_by("-views", "host").values_list("host", "views")[:limit]
    )



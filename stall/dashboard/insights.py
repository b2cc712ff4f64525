"""The Insights page: sales of a date range against the range before it, the revenue chart, the
breakdowns, page views and conversion, and memberships. Reads the daily rollups only
(stall.insights), so it stays fast at any number of orders."""

from dataclasses import dataclass
from datetime import date

from django.contrib.auth.decorators import login_required
from django.utils import timezone

from stall.insights import selectors as insights
from stall.insights.charts import bar_chart, bar_chart_html, fast_money

from .views import _render, _store

RANGE_CHOICES = (("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days"), ("12m", "12 months"), ("custom", "Custom"))


@dataclass(frozen=True)
class Stat:
    label: str
    now: str
    before: str
    change: object  # Decimal or None
    good_when_up: bool = True


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


@login_required
def insights_page(request, slug):
    store = _store(request, slug)
    key = request.GET.get("range", "30d")
    key = key if key in dict(RANGE_CHOICES) else "30d"
    start, end = _date(request.GET.get("start")), _date(request.GET.get("end"))
    span = insights.date_range(key=key, today=timezone.now().date(), start=start, end=end)
    by = request.GET.get("by") or ("month" if span.days > 92 else "day")
    by = by if by in ("day", "month") else "day"
    now, before = insights.figures(store=store, span=span), insights.figures(store=store, span=span.previous())
    money = lambda v: fast_money(v, store.currency)  # noqa: E731
    stats = [
        Stat("Gross", money(now.gross), money(before.gross), insights.change(now.gross, before.gross)),
        Stat("Net", money(now.net), money(before.net), insights.change(now.net, before.net)),
        Stat("Fees", money(now.fees), money(before.fees), insights.change(now.fees, before.fees), False),
        Stat("Refunds", money(now.refunds), money(before.refunds), insights.change(now.refunds, before.refunds), False),
        Stat("Orders", str(now.orders), str(before.orders), insights.change(now.orders, before.orders)),
        Stat("Average order", money(now.average_order), money(before.average_order),
             insights.change(now.average_order, before.average_order)),
        Stat("New customers", str(now.new_customers), str(before.new_customers),
             insights.change(now.new_customers, before.new_customers)),
    ]
    series = insights.revenue_series(store=store, span=span, by=by)
    chart = bar_chart(title=f"Gross sales by {by}, {span.start:%-d %b %Y} to {span.end:%-d %b %Y}",
                      points=[(p.label, p.gross) for p in series], currency=store.currency)
    rows = [{"label": p.label, "gross_text": money(p.gross), "net_text": money(p.net), "orders": p.orders} for p in series]
    member_stats, churn_rate = insights.memberships(store=store)
    groups = insights.breakdown_groups(store=store, span=span)
    context = {
        "store": store, "section": "insights", "span": span, "range": key, "ranges": RANGE_CHOICES, "by": by,
        "stats": stats, "chart_html": bar_chart_html(chart, id="revenue", rows=rows),
        "by_product": insights.breakdown(store=store, span=span, by="product", groups=groups),
        "by_kind": insights.breakdown(store=store, span=span, by="kind", groups=groups),
        "by_rail": insights.breakdown(store=store, span=span, by="rail", groups=groups),
        "pages": insights.page_views(store=store, span=span),
        "referrers": insights.top_referrers(store=store, span=span),
        "members": member_stats, "churn_rate": churn_rate,
    }
    return _render(request, "dashboard/insights.html", context)

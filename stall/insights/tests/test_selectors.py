"""The overview's figures, its comparison with the range before, the chart's series and the
breakdowns, read from rollups; and the Insights page."""

from datetime import date

import pytest
from django.urls import reverse

from stall.insights.models import DailyRollup, DailyTotal
from stall.insights.rollups import daily_totals
from stall.insights.selectors import breakdown, change, date_range, figures, revenue_series
from stall.testing import ProductFactory

pytestmark = pytest.mark.django_db


def roll(store, day, *, gross, product_id="", kind="download", rail="sandbox", orders=1, new=0, fees=0):
    """A rollup row, and the day totals made again from all rows (as the rebuild writes them)."""
    DailyRollup.objects.create(store=store, day=day, currency="USD", kind=kind, product_id=product_id, rail=rail,
                               gross=gross, processing_fees=fees, net=gross - fees, orders=orders, new_customers=new)
    DailyTotal.objects.all().delete()
    DailyTotal.objects.bulk_create(daily_totals(list(DailyRollup.objects.all())))


def test_named_and_custom_ranges_and_the_range_before():
    today = date(2026, 3, 10)
    span = date_range(key="7d", today=today)
    assert (span.start, span.end, span.days) == (date(2026, 3, 4), today, 7)
    assert (span.previous().start, span.previous().end) == (date(2026, 2, 25), date(2026, 3, 3))
    year = date_range(key="12m", today=today)
    assert (year.start, year.end) == (date(2025, 4, 1), today)
    custom = date_range(key="custom", today=today, start=date(2026, 2, 10), end=date(2026, 2, 1))
    assert (custom.start, custom.end) == (date(2026, 2, 1), date(2026, 2, 10))


def test_the_overview_against_the_range_before(store):
    roll(store, date(2026, 3, 9), gross=1000, orders=2, new=1, fees=60)
    roll(store, date(2026, 3, 2), gross=400, orders=1, fees=20)
    roll(store, date(2026, 2, 20), gross=9999)  # before both ranges
    span = date_range(key="7d", today=date(2026, 3, 10))
    now, before = figures(store=store, span=span), figures(store=store, span=span.previous())
    assert (now.gross, now.net, now.fees, now.orders, now.average_order, now.new_customers) == (1000, 940, 60, 2, 500, 1)
    assert (before.gross, before.orders) == (400, 1)
    assert change(now.gross, before.gross) == 150 and change(5, 0) is None


def test_the_series_fills_empty_days_and_sums_months(store):
    roll(store, date(2026, 3, 9), gross=1000)
    roll(store, date(2026, 3, 9), gross=50, kind="tip", rail="wallet")
    roll(store, date(2026, 1, 31), gross=7)
    span = date_range(key="7d", today=date(2026, 3, 10))
    assert [(p.label, p.gross) for p in revenue_series(store=store, span=span)][-3:] == [
        ("2026-03-08", 0), ("2026-03-09", 1050), ("2026-03-10", 0)]
    months = revenue_series(store=store, span=date_range(key="custom", today=date(2026, 3, 10), start=date(2026, 1, 15),
                                                         end=date(2026, 3, 10)), by="month")
    assert [(p.label, p.gross, p.orders) for p in months] == [("2026-01", 7, 1), ("2026-02", 0, 0), ("2026-03", 1050, 2)]


def test_the_breakdowns(store):
    zine, font = ProductFactory(store=store, name="Zine"), ProductFactory(store=store, name="Font")
    roll(store, date(2026, 3, 9), gross=300, product_id=zine.pk)
    roll(store, date(2026, 3, 8), gross=900, product_id=font.pk, rail="wallet", orders=3)
    roll(store, date(2026, 3, 8), gross=100, product_id="", kind="tip", rail="wallet")
    span = date_range(key="7d", today=date(2026, 3, 10))
    assert [(s.label, s.gross) for s in breakdown(store=store, span=span, by="product")] == [
        ("Font", 900), ("Zine", 300), ("—", 100)]
    assert [(s.label, s.gross, s.orders) for s in breakdown(store=store, span=span, by="rail")] == [
        ("Wallet", 1000, 4), ("Card (sandbox)", 300, 1)]
    assert [s.key for s in breakdown(store=store, span=span, by="kind")] == ["download", "tip"]


def test_the_insights_page_draws_the_chart_and_its_table(client, store):
    roll(store, date.today(), gross=1234)
    client.force_login(store.owner)
    page = client.get(reverse("dashboard:insights", args=[store.slug]), {"range": "7d"})
    body = page.content.decode()
    assert page.status_code == 200
    assert '<svg viewBox="0 0 720 240" role="img" aria-labelledby="revenue-title"' in body
    assert f'aria-label="{date.today().isoformat()}: $12.34"' in body
    assert 'data-testid="revenue-table"' in body
    other = client.get(reverse("dashboard:insights", args=[store.slug]), {"range": "custom", "start": "bad", "end": ""})
    assert other.status_code == 200


@pytest.mark.parametrize("currency", ["USD", "EUR", "KRW", "JPY", "KWD", "BRL"])
@pytest.mark.parametrize("language", ["en", "ko", "pt-br"])
def test_the_charts_money_is_format_moneys(currency, language):
    from django.utils import translation

    from stall.core.money import format_money
    from stall.insights.charts import fast_money

    with translation.override(language):
        for amount in (0, 5, 99, 100, 12345, 1000000, 123456789012, -250):
            assert fast_money(amount, currency) == format_money(amount, currency), (amount, currency, language)

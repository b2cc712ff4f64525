"""Cookieless page views: unique visitors by a daily salted hash, referrers, conversion."""

from datetime import date

import pytest
from django.urls import reverse

from stall.insights import pageviews
from stall.insights.models import DailySalt, PageViewDay, ReferrerDay
from stall.insights.selectors import date_range, page_views, top_referrers
from stall.testing import ProductFactory

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120"


@pytest.fixture(autouse=True)
def empty_buffer():
    pageviews.page_views_flush()
    pageviews._salts.clear()
    yield
    pageviews._views.clear()
    pageviews._referrers.clear()


def test_views_and_visitors_of_a_product_page_without_cookies(client, store):
    product = ProductFactory(store=store, name="Zine")
    url = reverse("stores:product", args=[store.slug, product.slug])
    client.get(url, HTTP_USER_AGENT=BROWSER, HTTP_REFERER="https://news.example.org/item?id=1")
    client.get(url, HTTP_USER_AGENT=BROWSER)
    response = client.get(url, HTTP_USER_AGENT=BROWSER + " Firefox", REMOTE_ADDR="10.0.0.9")
    client.get(url, HTTP_USER_AGENT="Googlebot/2.1")  # bots are not counted
    client.get(reverse("stores:store", args=[store.slug]), HTTP_USER_AGENT=BROWSER, HTTP_REFERER="http://testserver/")
    assert "Set-Cookie" not in str(response.headers) or "sessionid" not in response.cookies
    assert pageviews.page_views_flush() == 4
    row = PageViewDay.objects.get(store=store, page="product")
    assert (row.object_id, row.views, row.visitors) == (product.pk, 3, 2)
    assert PageViewDay.objects.get(store=store, page="store").views == 1
    assert list(ReferrerDay.objects.values_list("host", "views")) == [("news.example.org", 1)]  # not our own host
    # The next flush counts the same visitor again as no one new.
    client.get(url, HTTP_USER_AGENT=BROWSER)
    pageviews.page_views_flush()
    row.refresh_from_db()
    assert (row.views, row.visitors) == (4, 2)
    assert DailySalt.objects.count() == 1


def test_a_new_days_salt_makes_every_visitor_new(rf, store):
    request = rf.get("/", HTTP_USER_AGENT=BROWSER)
    from datetime import UTC, datetime
    pageviews.page_view_record(request, store_id=store.pk, page="store", now=datetime(2026, 3, 1, 12, tzinfo=UTC))
    pageviews.page_view_record(request, store_id=store.pk, page="store", now=datetime(2026, 3, 2, 12, tzinfo=UTC))
    pageviews.page_views_flush()
    assert sorted(PageViewDay.objects.values_list("day", "visitors")) == [(date(2026, 3, 1), 1), (date(2026, 3, 2), 1)]
    salts = list(DailySalt.objects.values_list("value", flat=True))
    assert len(set(salts)) == 2


def test_conversion_is_orders_over_visitors(store):
    from stall.insights.models import DailyRollup

    product = ProductFactory(store=store, name="Zine")
    today = date.today()
    PageViewDay.objects.create(store=store, day=today, page="product", object_id=product.pk, views=40, visitors=20)
    ReferrerDay.objects.create(store=store, day=today, host="a.example", views=3)
    DailyRollup.objects.create(store=store, day=today, currency="USD", kind="download", product_id=product.pk,
                               rail="sandbox", gross=900, net=900, orders=3)
    span = date_range(key="7d", today=today)
    [figures] = page_views(store=store, span=span)
    assert (figures.label, figures.views, figures.visitors, figures.orders, str(figures.conversion)) == (
        "Zine", 40, 20, 3, "15.0")
    assert top_referrers(store=store, span=span) == [("a.example", 3)]


def test_views_of_a_store_that_is_gone_are_dropped_and_the_others_written(rf, store):
    """A buffered view whose store no longer exists (deleted, or a database emptied under a
    running process) is dropped; the other stores' views are still written."""
    request = rf.get("/", HTTP_USER_AGENT=BROWSER)
    pageviews.page_view_record(request, store_id="sto_gone", page="store")
    pageviews.page_view_record(request, store_id=store.pk, page="store")
    pageviews.page_views_flush()
    assert list(PageViewDay.objects.values_list("store_id", "views")) == [(store.pk, 1)]


def test_a_failure_to_count_a_view_never_breaks_the_page(client, store, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the counter's database is away")

    monkeypatch.setattr(pageviews, "page_view_record", broken)
    response = client.get(reverse("stores:store", args=[store.slug]), HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 200

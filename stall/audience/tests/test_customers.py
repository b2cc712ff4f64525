import csv
import io
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from stall.accounts.models import Customer
from stall.accounts.services import buyer_for_email
from stall.audience.models import Subscriber, SubscriberStatus
from stall.audience.selectors import CustomerFilters, customers_list
from stall.audience.services import customers_import
from stall.campaigns.services import campaign_create, campaign_publish, pledge_cancel, pledge_create
from stall.memberships.services import subscription_complimentary_create
from stall.memberships.tiers import tier_create
from stall.orders.refunds import refund_create
from stall.testing import ProductFactory, StoreFactory, buy
from stall.wallets.services import wallet_top_up

from .conftest import subscribe


def _emails(qs):
    return sorted(c.email for c in qs)


def test_totals_count_paid_orders_less_refunds(store, zine):
    """A customer's spent is what they paid less what was refunded; orders and first/last seen follow their orders."""
    first = buy(store=store, product=zine, email="Ann@Example.com")
    second = buy(store=store, product=zine, email="ann@example.com")
    refund_create(store=store, order_id=second.pk, amount=100)
    buy(store=store, product=zine, email="bob@example.com")
    ann = customers_list(store=store).get(email="ann@example.com")
    assert (ann.order_count, ann.spent) == (2, 500)
    assert ann.first_seen <= first.created_at and ann.last_seen >= second.created_at
    other = StoreFactory()
    buy(store=other, product=ProductFactory(store=other), email="ann@example.com")
    assert customers_list(store=store).get(email="ann@example.com").order_count == 2


def test_filters_and_search_are_exact(store, zine, wallet_reader):
    """Each filter keeps exactly the customers it names."""
    other_product = ProductFactory(store=store, name="Poster")
    buy(store=store, product=zine, email="zine@example.com")
    buy(store=store, product=other_product, email="poster@example.com")
    buy(store=store, product=zine, email="wallet@example.com")
    subscribe(store, "listed@example.com")
    subscribe(store, "gone@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    tier = tier_create(store=store, name="Friends", prices=[{"interval": "month", "amount": 500}])
    subscription_complimentary_create(tier=tier, email="member@example.com", ends_at=timezone.now() + timedelta(days=30))

    def found(**kw):
        return _emails(customers_list(store=store, filters=CustomerFilters(**kw)))

    assert found(product=zine.pk) == ["wallet@example.com", "zine@example.com"]
    assert found(tier=tier.pk) == ["member@example.com"]
    assert found(has_wallet=True) == ["wallet@example.com"]
    assert found(subscribed=True) == ["listed@example.com"]
    assert "gone@example.com" in found(subscribed=False)
    assert found(q="POST") == ["poster@example.com"]


def test_customer_page_is_scoped_to_the_store(signed_in, store, zine):
    """A store's customer page shows their orders; another store's customer is a 404."""
    buy(store=store, product=zine, email="ann@example.com")
    ann = Customer.objects.get(store=store, email="ann@example.com")
    page = signed_in.get(reverse("dashboard:customer", args=[store.slug, ann.pk]))
    assert page.status_code == 200 and b"Zine" in page.content and b"$3.00" in page.content
    other = StoreFactory()
    stranger = Customer.objects.create(store=other, email="x@example.com")
    assert signed_in.get(reverse("dashboard:customer", args=[store.slug, stranger.pk])).status_code == 404
    listing = signed_in.get(reverse("dashboard:customers", args=[store.slug]), {"q": "ann"})
    assert listing.status_code == 200 and b"ann@example.com" in listing.content


def test_export_is_csv_of_the_filtered_customers(signed_in, store, zine):
    buy(store=store, product=zine, email="ann@example.com")
    subscribe(store, "listed@example.com")
    response = signed_in.get(reverse("dashboard:customers_export", args=[store.slug]), {"subscribed": "yes"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:2] == ["email", "name"]
    assert [r[0] for r in rows[1:]] == ["listed@example.com"]
    everyone = signed_in.get(reverse("dashboard:customers_export", args=[store.slug]))
    rows = list(csv.reader(io.StringIO(b"".join(everyone.streaming_content).decode())))
    ann = next(r for r in rows if r[0] == "ann@example.com")
    assert ann[4:7] == ["1", "300", "USD"]


def test_import_keeps_good_rows_and_reports_bad_ones(store):
    """Bad rows are reported by line; good rows are kept; only consent=yes joins the list."""
    subscribe(store, "left@example.com", status=SubscriberStatus.UNSUBSCRIBED)
    data = (
        "Name,Email,Consent\n"
        "Ann,ann@example.com,yes\n"
        "Bob,bob@example.com,no\n"
        "Bad,not-an-email,yes\n"
        "Cat,cat@example.com,maybe\n"
        "Ann again,ANN@example.com,yes\n"
        "Left,left@example.com,yes\n"
    )
    result = customers_import(store=store, data=data.encode())
    assert (result.customers, result.subscribed, result.suppressed) == (3, 1, 1)
    assert [line for line, _ in result.errors] == [4, 5, 6]
    assert "not-an-email" in result.errors[0][1] and "maybe" in result.errors[1][1]
    statuses = dict(Subscriber.objects.filter(store=store).values_list("email", "status"))
    assert statuses == {"ann@example.com": "subscribed", "left@example.com": "unsubscribed"}
    assert Customer.objects.get(store=store, email="ann@example.com").name == "Ann"


def test_import_without_the_consent_column_is_refused_whole(signed_in, store):
    upload = SimpleUploadedFile("list.csv", b"email,name\nann@example.com,Ann\n", content_type="text/csv")
    response = signed_in.post(reverse("dashboard:customers_import", args=[store.slug]), {"file": upload})
    assert response.status_code == 400
    assert b"needs the columns email and consent (missing: consent)" in response.content
    assert not Customer.objects.filter(store=store).exists()
    upload = SimpleUploadedFile("list.csv", b"email,consent\nann@example.com,yes\nbad,yes\n", content_type="text/csv")
    response = signed_in.post(reverse("dashboard:customers_import", args=[store.slug]), {"file": upload})
    assert response.status_code == 200 and b"Line 3" in response.content
    assert Subscriber.objects.filter(store=store, email="ann@example.com", status="subscribed").exists()


def test_backers_are_customers_and_the_campaign_filter_keeps_those_still_backing(signed_in, store):
    campaign = campaign_publish(campaign=campaign_create(
        store=store, title="Moss", goal=1000, deadline=timezone.now() + timedelta(days=30)))
    for email in ("bee@example.com", "quit@example.com"):
        backer = buyer_for_email(email=email)
        wallet_top_up(buyer=backer, amount=500, currency="USD", payment_method="sandbox_visa")
        pledge = pledge_create(campaign=campaign, buyer=backer, amount=25, method="wallet")
    pledge_cancel(pledge=pledge)
    assert _emails(customers_list(store=store)) == ["bee@example.com", "quit@example.com"]
    assert _emails(customers_list(store=store, filters=CustomerFilters(campaign=campaign.pk))) == ["bee@example.com"]
    page = signed_in.get(reverse("dashboard:customers", args=[store.slug]), {"campaign": campaign.pk})
    assert page.status_code == 200 and b"bee@example.com" in page.content and b"quit@example.com" not in page.content

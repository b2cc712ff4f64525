import pytest

from stall.accounts.services import buyer_for_email
from stall.audience.models import Subscriber, SubscriberSource, SubscriberStatus
from stall.audience.services import customer_ensure
from stall.testing import ProductFactory
from stall.wallets.services import wallet_top_up


def subscribe(store, email, status=SubscriberStatus.SUBSCRIBED):
    customer = customer_ensure(store=store, email=email)
    return Subscriber.objects.create(store=store, email=email, customer=customer, status=status, source=SubscriberSource.IMPORT)


@pytest.fixture
def zine(store):
    return ProductFactory(store=store, name="Zine", amount=300)


@pytest.fixture
def wallet_reader(db):
    buyer = buyer_for_email(email="wallet@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


@pytest.fixture
def signed_in(client, creator):
    client.force_login(creator)
    return client

"""Fixtures shared by the whole suite."""

import pytest
from huey.contrib.djhuey import HUEY


@pytest.fixture(autouse=True, scope="session")
def huey_immediate():
    """Tasks run in-process as soon as they are enqueued (Huey's own immediate mode)."""
    HUEY.immediate = True
    yield
    HUEY.immediate = False


@pytest.fixture(autouse=True)
def ledger_account_ids_forgotten():
    """The ledger keeps fixed accounts' ids in memory; a test that emptied the database (a
    transactional test) must not leave ids of accounts that are gone to the next one."""
    from stall.ledger.services import account_ids_forget

    account_ids_forget()
    yield
    account_ids_forget()


@pytest.fixture(autouse=True)
def page_views_discarded():
    """Page views are buffered in the process (stall.insights.pageviews) and written later: a
    test's views must not be written into the next test's database."""
    from stall.insights.pageviews import page_views_discard

    page_views_discard()
    yield
    page_views_discard()


@pytest.fixture(autouse=True)
def language_reset():
    """Each test starts in the default language. Django leaves a request's language active in
    its thread, so a test's Korean or Portuguese page would otherwise make the next test's
    services (a checkout's recorded language, a receipt) run in that language."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def rate_limits_reset():
    """Each test starts with no attempts counted: the limits' cache is files shared by runs."""
    from django.core.cache import caches

    caches["limits"].clear()
    yield


@pytest.fixture
def creator(db):
    from stall.testing import UserFactory

    return UserFactory()


@pytest.fixture
def store(creator):
    from stall.testing import StoreFactory

    return StoreFactory(owner=creator)


@pytest.fixture
def product(store):
    from stall.testing import ProductFactory

    return ProductFactory(store=store)


@pytest.fixture
def api_key(store):
    from stall.integrations.services import api_key_create

    _, secret = api_key_create(store=store, name="tests")
    return secret


@pytest.fixture
def api(client, api_key):
    """A Django test client that sends the store's API key."""
    from stall.testing import ApiClient

    return ApiClient(client, api_key)


def pytest_configure(config):
    """The translation catalogs compiled before any test runs, as `make messages` does at install,
    so a .po edited since (or a fresh checkout, which has no .mo) is what the pages show."""
    from stall.core.catalogs import catalogs_compile

    catalogs_compile()

import pytest
from django.db.models import Sum

from stall.accounts.services import buyer_for_email
from stall.catalog.models import ProductStatus
from stall.content.services import post_create, tip_jar_update
from stall.ledger.models import Account
from stall.ledger.selectors import account_balance, account_sums_from_transfers
from stall.payments.rails.wallet import wallet_get
from stall.wallets.services import wallet_top_up

# Three paragraphs and a marker-free body: the preview is the first two.
BODY = "The free opening.\n\nA second free paragraph.\n\nThe secret ending only payers read."
SECRET = "The secret ending only payers read."


def make_post(store, *, title="Field notes", amount=25, body=BODY, status=ProductStatus.PUBLISHED, slug=""):
    return post_create(store=store, title=title, amount=amount, body=body, status=status, slug=slug)


def store_balance(store) -> int:
    return account_balance(kind="store_balance", owner=store.pk, currency=store.currency).amount


def wallet_balance(buyer, currency="USD") -> int:
    wallet = wallet_get(buyer=buyer, currency=currency)
    return wallet.account.balance if wallet else 0


def assert_ledger_balanced():
    """Every account's running totals equal the sum of its transfers, and debits equal credits."""
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account
    totals = Account.objects.aggregate(d=Sum("debits_posted"), c=Sum("credits_posted"))
    assert totals["d"] == totals["c"]


@pytest.fixture
def reader(db):
    return buyer_for_email(email="reader@example.com")


@pytest.fixture
def funded(reader):
    """The reader with $5.00 in the wallet, topped up with a test card (45¢ of card fee in its pool)."""
    wallet_top_up(buyer=reader, amount=500, currency="USD", payment_method="sandbox_visa")
    return reader


@pytest.fixture
def post(store):
    return make_post(store)


@pytest.fixture
def jar(store):
    return tip_jar_update(store=store, enabled=True, goal_amount=2000, goal_title="A new microphone")

"""Setting money aside on each sale (tax reserve, envelopes) and giving it back on refunds."""

import pytest
from django.test import override_settings

from stall.accounts.services import buyer_for_email
from stall.books.errors import SplitTooLarge
from stall.books.models import BooksSettings, Envelope
from stall.books.services import books_settings_update, envelope_create, envelope_update
from stall.content.services import post_create, post_unlock
from stall.core.money import prorate
from stall.ledger.models import Account, AccountKind, Transfer
from stall.ledger.selectors import account_sums_from_transfers
from stall.orders.refunds import refund_create
from stall.orders.tests.test_spend import SPEND_STATEMENTS, at_most
from stall.testing import ProductFactory, buy
from stall.wallets.services import wallet_top_up

pytestmark = pytest.mark.django_db


def balance(kind, owner, currency="USD"):
    account = Account.objects.filter(kind=kind, owner=owner, currency=currency).first()
    return account.balance if account else 0


def assert_ledger_balanced():
    for account in Account.objects.all():
        sums = account_sums_from_transfers(account=account)
        assert {k: getattr(account, k) for k in sums} == sums, account


@pytest.fixture
def split(store):
    books_settings_update(store=store, tax_rate="25")
    return envelope_create(store=store, name="Owner pay", share="10.5")


@override_settings(STALL_PLATFORM_FEE_BPS=500)
def test_a_card_sale_sets_its_shares_of_the_net_aside(store, split):
    """A $3 card sale: 25% and 10.5% of what it left in the balance move to the tax reserve and the
    envelope, and the balance keeps the rest."""
    order = buy(store=store, product=ProductFactory(store=store, amount=300))
    net = 300 - order.fee - order.platform_fee
    assert order.platform_fee == 15 and order.fee > 0
    tax, owner_pay = prorate(net, 2500, 10_000), prorate(net, 1050, 10_000)
    assert balance(AccountKind.TAX_RESERVE, store.pk) == tax
    assert balance(AccountKind.ENVELOPE, f"{store.pk}:e{split.pk}") == owner_pay
    assert balance(AccountKind.STORE_BALANCE, store.pk) == net - tax - owner_pay
    assert sorted(Transfer.objects.filter(reference=order.pk, code__in=["tax_reserve", "envelope"]).values_list("code", "amount")) == [
        ("envelope", owner_pay), ("tax_reserve", tax)]
    assert_ledger_balanced()


def test_a_store_with_nothing_set_aside_moves_nothing(store):
    buy(store=store, product=ProductFactory(store=store, amount=300))
    assert not Account.objects.filter(kind__in=[AccountKind.TAX_RESERVE, AccountKind.ENVELOPE]).exists()


def test_a_refund_gives_back_its_share_and_a_full_refund_all_of_it(store, split):
    """Partial refunds give back the set-aside in proportion, on running totals, so the full
    refund leaves exactly nothing set aside for the order."""
    order = buy(store=store, product=ProductFactory(store=store, amount=1000))
    tax_before = balance(AccountKind.TAX_RESERVE, store.pk)
    env_owner = f"{store.pk}:e{split.pk}"
    env_before = balance(AccountKind.ENVELOPE, env_owner)
    refund_create(store=store, order_id=order.pk, amount=333)
    assert balance(AccountKind.TAX_RESERVE, store.pk) == tax_before - prorate(tax_before, 333, 1000)
    assert balance(AccountKind.ENVELOPE, env_owner) == env_before - prorate(env_before, 333, 1000)
    refund_create(store=store, order_id=order.pk)
    assert balance(AccountKind.TAX_RESERVE, store.pk) == 0
    assert balance(AccountKind.ENVELOPE, env_owner) == 0
    assert Transfer.objects.filter(reference=order.pk, code="tax_reserve_back").count() == 2
    assert_ledger_balanced()


@pytest.fixture
def reader(db):
    buyer = buyer_for_email(email="reader@example.com")
    wallet_top_up(buyer=buyer, amount=1000, currency="USD", payment_method="sandbox_visa")
    return buyer


def test_a_wallet_unlock_sets_aside_within_the_spend_budget(store, split, reader, django_capture_on_commit_callbacks):
    """The split rides in the lean spend's first SELECT and its transfers in the same INSERT and
    UPDATE as the sale's: a 25¢ unlock still takes at most ten statements."""
    warm = post_create(store=store, title="Warm", amount=25, status="published")
    with django_capture_on_commit_callbacks(execute=True):
        post_unlock(post=warm, method="wallet", buyer=reader)
    reserve = balance(AccountKind.TAX_RESERVE, store.pk)
    post = post_create(store=store, title="Counted", amount=100, status="published")
    with at_most(SPEND_STATEMENTS):
        unlock = post_unlock(post=post, method="wallet", buyer=reader)
    order = unlock.order
    net = order.amount_total - order.fee - order.platform_fee
    assert balance(AccountKind.TAX_RESERVE, store.pk) == reserve + prorate(net, 2500, 10_000)
    assert_ledger_balanced()
    refund_create(store=store, order_id=order.pk)
    assert balance(AccountKind.TAX_RESERVE, store.pk) == reserve
    assert_ledger_balanced()


def test_the_shares_add_up_to_at_most_100_percent(store, split):
    """25% + 10.5% set: an envelope or a tax rate taking the total past 100% is refused and
    changes nothing."""
    with pytest.raises(SplitTooLarge, match=r"would add up to 100\.5%"):
        envelope_create(store=store, name="Emergency", share="65")
    assert not Envelope.objects.filter(name="Emergency").exists()
    with pytest.raises(SplitTooLarge):
        books_settings_update(store=store, tax_rate="90")
    with pytest.raises(SplitTooLarge):
        envelope_update(store=store, envelope_id=split.pk, name="Owner pay", share="76")
    emergency = envelope_create(store=store, name="Emergency", share="64.5")
    assert BooksSettings.objects.get(store=store).split == f"tax:2500;e{split.pk}:1050;e{emergency.pk}:6450"

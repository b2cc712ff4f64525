"""The pledge table's indexes are the ones its queries use, and no more: a deadline settles its
pledges by the hundred thousand, and each status change writes into every index of the row that
holds it. On PostgreSQL no campaign table keeps Django's LIKE twin (``varchar_pattern_ops``) of
an id index: nothing here does LIKE on an id."""

import pytest
from django.db import connection

from stall.campaigns.models import Campaign, CampaignUpdate, Pledge, RewardTier

pytestmark = pytest.mark.django_db


def _indexes(model) -> dict[str, dict]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: c for name, c in found.items() if c["index"] or c["primary_key"] or c["unique"]}


def _partial(name: str, table: str) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s", [table, name])
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND name = %s",
                           [table, name])
        row = cursor.fetchone()
    return row is not None and row[0] is not None and " WHERE " in row[0].upper()


def test_a_wallet_pledge_is_in_three_indexes():
    """Every index of a wallet pledge's row but three is partial on a column it leaves empty (a
    card, a reward, an order, a card setup, a recovery checkout, a failed charge)."""
    table = Pledge._meta.db_table
    full = sorted(tuple(c["columns"]) for name, c in _indexes(Pledge).items() if not _partial(name, table))
    assert full == [("campaign_id", "status", "id"), ("email", "id"), ("id",)]


@pytest.mark.parametrize("model", [Campaign, RewardTier, Pledge, CampaignUpdate])
def test_no_index_is_a_like_twin_or_repeats_another(model):
    indexes = _indexes(model)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
                           [model._meta.db_table, "%varchar_pattern_ops%"])
            assert cursor.fetchall() == []
    # No index whose columns lead another's (the foreign keys' own indexes were that).
    columns = [tuple(c["columns"]) for c in indexes.values()]
    for one in columns:
        for other in columns:
            if one is not other and len(one) < len(other):
                assert other[:len(one)] != one or one == ("id",), (one, other)

"""Prefixed, time-ordered ids."""

import re
from unittest import mock

import pytest

from stall.core.ids import PrefixedIdField, new_id

ID_PATTERN = re.compile(r"^prod_[0-9abcdefghjkmnpqrstvwxyz]{26}$")


def test_new_id_is_prefix_and_26_crockford_characters():
    """An id is the prefix, an underscore and 26 lower-case Crockford base32 characters."""
    value = new_id("prod")
    assert ID_PATTERN.fullmatch(value), value


def test_new_ids_do_not_repeat():
    """80 random bits per millisecond: ten thousand ids made at once are all different."""
    assert len({new_id("chk") for _ in range(10_000)}) == 10_000


def test_new_ids_sort_by_creation_time():
    """An id made a millisecond later sorts after one made earlier, whatever the random bits."""
    with mock.patch("time.time", return_value=1_700_000_000.000):
        earlier = [new_id("ord") for _ in range(200)]
    with mock.patch("time.time", return_value=1_700_000_000.001):
        later = [new_id("ord") for _ in range(200)]
    assert max(earlier) < min(later)


def test_new_id_encodes_the_millisecond_timestamp_first():
    """The first ten characters hold the 48-bit millisecond timestamp (the ULID layout)."""
    with mock.patch("time.time", return_value=0.0):
        assert new_id("x")[2:12] == "0000000000"
    with mock.patch("time.time", return_value=1.0):  # 1000 ms = 31 * 32 + 8
        assert new_id("x")[2:12] == "00000000z8"


@pytest.mark.django_db
def test_prefixed_id_field_gives_each_new_row_its_own_id():
    """A model with a PrefixedIdField gets a fresh prefixed primary key at creation."""
    from stall.testing import ProductFactory

    first, second = ProductFactory(), ProductFactory()
    assert ID_PATTERN.fullmatch(first.pk)
    assert first.pk != second.pk


def test_prefixed_id_field_deconstructs_to_its_prefix_only():
    """Migrations record the prefix; the fixed length, primary key and default are implied."""
    name, path, args, kwargs = PrefixedIdField(prefix="pay").deconstruct()
    assert path == "stall.core.ids.PrefixedIdField"
    assert kwargs == {"prefix": "pay"}
    rebuilt = PrefixedIdField(**kwargs)
    assert (rebuilt.max_length, rebuilt.primary_key, rebuilt.editable) == (40, True, False)


def test_new_ids_makes_many_distinct_ids_of_the_same_shape_and_time():
    """Ids made in bulk have the single id's shape, the current millisecond and no repeats."""
    from stall.core.ids import new_ids

    with mock.patch("time.time", return_value=1.0):
        made = new_ids("prod", 5000)
    assert len(set(made)) == 5000
    assert all(ID_PATTERN.fullmatch(value) for value in made)
    assert {value[5:15] for value in made} == {"00000000z8"}


def test_the_random_part_uses_every_character():
    """Each of the sixteen random characters is uniform over the 32 letters (80 random bits)."""
    from stall.core.ids import new_ids

    tails = [value[-16:] for value in new_ids("x", 2000)]
    for position in range(16):
        assert len({tail[position] for tail in tails}) == 32


def test_id_floor_sorts_before_every_id_of_that_millisecond():
    """The floor of a moment is the smallest id of its millisecond: all ids made then sort after it."""
    from datetime import UTC, datetime

    from stall.core.ids import id_floor

    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    with mock.patch("time.time", return_value=moment.timestamp()):
        made = [new_id("ord") for _ in range(100)]
    floor = id_floor("ord", moment)
    assert floor == "ord_" + made[0][4:14] + "0" * 16
    assert all(floor < value for value in made)

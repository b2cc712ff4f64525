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


def test_new_id_is_the_ulid_layout_five_bits_a_character():
    """The id's 26 characters are the 48-bit millisecond timestamp then the 80 random bits, five
    bits a character, most significant first: the same as encoding them one character at a time."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    for ms, random_bits in [(0, 0), (1, 1), (2**48 - 1, 2**80 - 1), (1_700_000_000_123, 0x1234_5678_9ABC_DEF0_1234)]:
        value, chars = (ms << 80) | random_bits, []
        for _ in range(26):
            value, index = divmod(value, 32)
            chars.append(alphabet[index])
        with mock.patch("time.time", return_value=ms / 1000), mock.patch("secrets.randbits", return_value=random_bits):
            assert new_id("tr") == "tr_" + "".join(reversed(chars))

"""Period bounds: the anchor's day of the month is kept and clamped to each month's length."""

from datetime import UTC, datetime

import pytest

from stall.memberships.billing import period_bound, retry_at


def at(y, m, d):
    return datetime(y, m, d, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("anchor", "interval", "bounds"),
    [
        (at(2027, 1, 31), "month", [at(2027, 1, 31), at(2027, 2, 28), at(2027, 3, 31), at(2027, 4, 30), at(2027, 5, 31)]),
        (at(2028, 1, 31), "month", [at(2028, 1, 31), at(2028, 2, 29), at(2028, 3, 31)]),
        (at(2027, 11, 30), "month", [at(2027, 11, 30), at(2027, 12, 30), at(2028, 1, 30), at(2028, 2, 29)]),
        (at(2028, 2, 29), "year", [at(2028, 2, 29), at(2029, 2, 28), at(2030, 2, 28), at(2031, 2, 28), at(2032, 2, 29)]),
        (at(2027, 12, 28), "week", [at(2027, 12, 28), at(2028, 1, 4), at(2028, 1, 11)]),
    ],
)
def test_period_bounds_keep_the_anchor_day(anchor, interval, bounds):
    assert [period_bound(anchor, interval, n) for n in range(len(bounds))] == bounds


def test_dunning_retries_after_2_7_and_14_days_then_none():
    since = at(2027, 3, 1)
    assert [retry_at(since, n) for n in range(4)] == [at(2027, 3, 3), at(2027, 3, 8), at(2027, 3, 15), None]

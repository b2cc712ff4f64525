"""The rate limiter: its settings, its windows, its count under concurrency, who it counts."""

import multiprocessing
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import caches
from django.test import RequestFactory

from stall.core.cache import LockedFileCache
from stall.core.limits import (
    Rate,
    RateLimited,
    client_address,
    limits_check,
    limits_hit,
    rate_parse,
)

# A window boundary for every period used here (a multiple of a day in Unix seconds).
WINDOW_START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def limits(settings):
    """Set limits by name for one test: ``limits(login_email="3/15m")``."""
    def set_limits(**rates):
        settings.STALL_LIMITS = {**settings.STALL_LIMITS, **rates}
    return set_limits


@pytest.mark.parametrize("text, rate", [
    ("10/15m", Rate(10, 900)), ("1/s", Rate(1, 1)), (" 5 / 2h ", Rate(5, 7200)), ("3/1d", Rate(3, 86400)),
    ("off", None), ("OFF", None),
])
def test_rate_parse_reads_count_and_period(text, rate):
    assert rate_parse(text) == rate


@pytest.mark.parametrize("text", ["10", "10/15", "0/1m", "10/0m", "-1/1m", "ten/1m", "10/1w", "10/1.5m"])
def test_rate_parse_refuses_what_it_cannot_read(text):
    """A mistyped limit is a setup error, not a limit silently off."""
    with pytest.raises(ValueError, match="10/15m"):
        rate_parse(text)


def test_limit_lets_count_through_then_refuses_until_the_window_ends(limits):
    limits(login_email="3/15m")
    with time_machine.travel(WINDOW_START, tick=False) as traveller:
        for _ in range(3):
            limits_hit(("login_email", "ada@example.com"))
        traveller.shift(60)
        with pytest.raises(RateLimited) as refused:
            limits_hit(("login_email", "ada@example.com"))
        assert refused.value.status == 429 and refused.value.code == "rate_limited"
        assert refused.value.retry_after == 840
        assert refused.value.message == "Too many attempts. Try again in 14 minutes."

        traveller.shift(839)  # one second before the next window: still refused
        with pytest.raises(RateLimited) as refused:
            limits_hit(("login_email", "ada@example.com"))
        assert refused.value.message == "Too many attempts. Try again in 1 second."
        traveller.shift(1)
        limits_hit(("login_email", "ada@example.com"))


def test_limits_count_each_subject_and_each_limit_apart(limits):
    limits(login_email="1/15m", magic_link_email="1/15m")
    with time_machine.travel(WINDOW_START, tick=False):
        limits_hit(("login_email", "ada@example.com"))
        limits_hit(("login_email", "bob@example.com"))
        limits_hit(("magic_link_email", "ada@example.com"))
        with pytest.raises(RateLimited):
            limits_hit(("login_email", "ada@example.com"))


def test_every_hit_is_counted_even_when_one_is_already_over(limits):
    """Changing address does not give an attacker back the email's attempts used meanwhile."""
    limits(login_email="2/15m", login_address="1/15m")
    with time_machine.travel(WINDOW_START, tick=False):
        limits_hit(("login_address", "198.51.100.1"), ("login_email", "ada@example.com"))
        with pytest.raises(RateLimited):  # over by address; the email's second attempt still counts
            limits_hit(("login_address", "198.51.100.1"), ("login_email", "ada@example.com"))
        with pytest.raises(RateLimited):  # a new address, but the email's two are used up
            limits_hit(("login_address", "198.51.100.2"), ("login_email", "ada@example.com"))


def test_a_limit_set_off_counts_nothing(limits):
    limits(api_key="off")
    for _ in range(50):
        limits_hit(("api_key", "key_1"))


def test_the_longest_wait_is_the_one_told(limits):
    limits(login_email="1/1h", login_address="1/15m")
    with time_machine.travel(WINDOW_START, tick=False):
        limits_hit(("login_email", "ada@example.com"), ("login_address", "198.51.100.1"))
        with pytest.raises(RateLimited) as refused:
            limits_hit(("login_email", "ada@example.com"), ("login_address", "198.51.100.1"))
    assert refused.value.retry_after == 3600


def _count(location: str, times: int, barrier) -> None:
    cache = LockedFileCache(location, {})
    barrier.wait()
    for _ in range(times):
        cache.add("hits", 0, timeout=60)
        cache.incr("hits")


def test_the_file_cache_counts_every_hit_of_concurrent_processes(tmp_path):
    """Four processes counting at once lose no count: the web workers of one machine share it."""
    processes, times = 4, 100
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)
    workers = [ctx.Process(target=_count, args=(str(tmp_path), times, barrier)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert LockedFileCache(str(tmp_path), {}).get("hits") == processes * times


def test_a_full_file_cache_drops_expired_counts_before_live_ones(tmp_path):
    cache = LockedFileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 10}})
    with time_machine.travel(WINDOW_START, tick=False) as traveller:
        for n in range(5):
            cache.add(f"live{n}", 1, timeout=3600)
        for n in range(5):
            cache.add(f"old{n}", 1, timeout=10)
        traveller.shift(60)
        cache.add("new", 1, timeout=3600)  # the cache is full: room is made
        assert all(cache.get(f"live{n}") == 1 for n in range(5))
        assert cache.get("new") == 1
        assert len(cache._list_cache_files()) == 6


def test_the_limits_cache_is_shared_by_processes(settings):
    """The limits are never in local memory, of which each web worker has its own."""
    assert "locmem" not in settings.CACHES["limits"]["BACKEND"]
    assert settings.REDIS_URL or isinstance(caches["limits"], LockedFileCache)


@pytest.mark.parametrize("remote, forwarded, behind_proxy, expected", [
    ("198.51.100.7", "", False, "198.51.100.7"),
    ("198.51.100.7", "203.0.113.9", False, "198.51.100.7"),  # no proxy: the header is the client's
    ("10.0.0.2", "1.1.1.1, 203.0.113.9", True, "203.0.113.9"),  # the proxy's own entry, not the first
    ("10.0.0.2", "", True, "10.0.0.2"),
    ("2001:db8:1:2:aaaa::1", "", False, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "", False, "2001:db8:1:2::/64"),  # the same /64, the same subject
    ("::ffff:198.51.100.7", "", False, "198.51.100.7"),
    ("", "", False, ""),
])
def test_client_address(settings, remote, forwarded, behind_proxy, expected):
    settings.STALL_BEHIND_PROXY = behind_proxy
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_a_check_counts_nothing_and_refuses_once_the_limit_is_used_up(limits):
    """limits_check reads the count: any number of checks leave it as it was, and once the hits
    have used up the limit every check is refused."""
    limits(login_address="2/1m")
    with time_machine.travel(WINDOW_START, tick=False):  # one window for the whole test
        for _ in range(5):
            limits_check(("login_address", "203.0.113.5"))
        limits_hit(("login_address", "203.0.113.5"))
        limits_check(("login_address", "203.0.113.5"))
        limits_hit(("login_address", "203.0.113.5"))
        with pytest.raises(RateLimited):
            limits_check(("login_address", "203.0.113.5"))
        limits_check(("login_address", "198.51.100.1"))

from hypothesis import given
from hypothesis import strategies as st

from stall.core.money import MAX_AMOUNT, amount_for_input, parse_amount


@given(
    amount=st.integers(min_value=0, max_value=MAX_AMOUNT),
    currency=st.sampled_from(["USD", "EUR", "BRL", "KRW", "JPY", "KWD"]),
    locale=st.sampled_from(["en", "ko", "pt-br", "de"]),
)
def test_an_amount_prefilled_in_a_form_reads_back_as_the_same_amount(amount, currency, locale):
    """What a form pre-fills for a buyer in their locale parses back to exactly the same minor units."""
    assert parse_amount(amount_for_input(amount, currency, locale), currency, locale=locale) == amount


def test_prefill_uses_the_locale_decimal_mark_and_no_grouping():
    """The prefill looks like what a person types: 7.50 in English, 7,50 in Brazilian Portuguese, 3000 won."""
    assert amount_for_input(750, "USD", "en") == "7.50"
    assert amount_for_input(750, "BRL", "pt-br") == "7,50"
    assert amount_for_input(3000, "KRW", "ko") == "3000"
    assert amount_for_input(123456, "KWD", "en") == "123.456"


@given(
    total=st.integers(min_value=0, max_value=10**6),
    parts=st.lists(st.integers(min_value=1, max_value=10**5), min_size=1, max_size=40),
)
def test_shares_taken_on_running_totals_add_up_to_exactly_the_total(total, parts):
    """Splitting a fee over sales by running totals never loses or makes up a minor unit."""
    from stall.core.money import prorate

    whole, before, shares = sum(parts), 0, []
    for part in parts:
        shares.append(prorate(total, before + part, whole) - prorate(total, before, whole))
        before += part
    assert sum(shares) == total
    assert all(share >= 0 for share in shares)

"""Money: parsing what people type, formatting for a locale, and currency codes."""

import re
import subprocess
import sys
from decimal import Decimal

import pytest

from stall.core.money import (
    MAX_AMOUNT,
    InvalidAmount,
    InvalidCurrency,
    Money,
    amount_validate,
    currency_exponent,
    currency_normalize,
    format_money,
    money_setting,
    money_setting_list,
    parse_amount,
    round_figure,
)


def exactly(message: str) -> str:
    """A ``match=`` pattern for the whole message, not a prefix or a fragment of it."""
    return f"^{re.escape(message)}$"


@pytest.mark.parametrize(
    ("text", "currency", "locale", "expected"),
    [
        ("2.50", "USD", "en", 250),
        ("2,50", "USD", "en", 250),
        ("₩3000", "KRW", "en", 3000),
        ("3000", "KRW", "en", 3000),
        ("3,000", "KRW", "ko", 3000),
        ("$1,000.50", "USD", "en", 100050),
        ("1.000,50", "USD", "en", 100050),
        ("1,000,000", "USD", "en", 100000000),
        ("1.000", "BRL", "pt-br", 100000),
        ("1.000", "BRL", "pt_BR", 100000),
        ("R$ 2,50", "BRL", "pt-br", 250),
        ("R$ 2,50", "BRL", "en", 250),
        ("1.234", "KWD", "en", 1234),
        ("  7 ", "USD", "en", 700),
        ("5 USD", "USD", "en", 500),
        (".5", "USD", "en", 50),
        ("0", "USD", "en", 0),
        ("9999999999.99", "USD", "en", MAX_AMOUNT),
        ("₺50", "TRY", "en", 5000),  # a sign no other currency claims
        ("１２", "USD", "en", 1200),  # full-width digits from an East Asian keyboard
    ],
)
def test_parse_amount_reads_what_people_type(text, currency, locale, expected):
    """parse_amount turns a typed amount into minor units of the currency, whatever the separators."""
    assert parse_amount(text, currency, locale=locale) == expected


@pytest.mark.parametrize(
    ("text", "currency", "locale", "message"),
    [
        ("abc", "USD", "en", "“abc” is not an amount."),
        ("1.2.3x", "USD", "en", "“1.2.3x” is not an amount in USD."),
        ("1.2.3", "USD", "en", "“1.2.3” is not an amount."),
        ("1,00,0", "USD", "en", "“1,00,0” is not an amount."),
        ("$", "USD", "en", "“$” is not an amount."),
        ("₩3000", "USD", "en", "“₩3000” is not an amount in USD."),
        ("€5", "USD", "en", "“€5” is not an amount in USD."),
        ("$5", "KRW", "en", "“$5” is not an amount in KRW."),
        ("", "USD", "en", "Enter an amount."),
        ("   ", "USD", "en", "Enter an amount."),
        (None, "USD", "en", "Enter an amount."),
        (250, "USD", "en", "Enter an amount."),
        ("-1", "USD", "en", "Amount cannot be negative."),
        ("-$1", "USD", "en", "Amount cannot be negative."),
        ("$-1", "USD", "en", "Amount cannot be negative."),
        ("\u22121", "USD", "en", "Amount cannot be negative."),  # U+2212 MINUS SIGN, as CLDR writes it
        ("1.234", "USD", "en", "USD amounts have at most 2 decimal places."),
        ("1.000", "BRL", "en", "BRL amounts have at most 2 decimal places."),
        ("1.2345", "KWD", "en", "KWD amounts have at most 3 decimal places."),
        ("1.5", "KRW", "en", "KRW has no minor unit; enter a whole amount."),
        ("1,5", "KRW", "ko", "KRW has no minor unit; enter a whole amount."),
        ("99999999999999", "USD", "en", "Amount is too large."),
        ("10000000000.00", "USD", "en", "Amount is too large."),
    ],
)
def test_parse_amount_refuses_anything_else_with_a_clear_message(text, currency, locale, message):
    """Junk, negatives, too many decimals and huge numbers are refused with a message for the amount field."""
    with pytest.raises(InvalidAmount, match=exactly(message)) as caught:
        parse_amount(text, currency, locale=locale)
    assert caught.value.code == "invalid_amount"
    assert caught.value.param == "amount"
    assert caught.value.status == 400


def test_parse_amount_names_the_field_it_was_given():
    """The error carries the caller's field name, so a form shows it next to that field."""
    with pytest.raises(InvalidAmount) as caught:
        parse_amount("abc", "USD", param="items[1].amount")
    assert caught.value.param == "items[1].amount"


def test_parse_amount_refuses_an_unknown_currency():
    """An unknown currency is a currency error, not an amount error."""
    with pytest.raises(InvalidCurrency, match=exactly("Unknown currency: XXQ.")):
        parse_amount("1", "XXQ")


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (123456, "USD", "en", "$1,234.56"),
        (123456, "USD", "ko", "US$1,234.56"),
        (123456, "USD", "pt_BR", "US$\xa01.234,56"),
        (123456, "USD", "pt-br", "US$\xa01.234,56"),
        (3000, "KRW", "en", "₩3,000"),
        (3000, "KRW", "ko", "₩3,000"),
        (3000, "KRW", "pt_BR", "₩\xa03.000"),
        (1234, "KWD", "en", "KWD1.234"),
        (1234, "KWD", "ko", "KWD1.234"),
        (1234, "KWD", "pt_BR", "KWD\xa01,234"),
        (250, "BRL", "pt_BR", "R$\xa02,50"),
        (5, "USD", "en", "$0.05"),
        (0, "KRW", "en", "₩0"),
    ],
)
def test_money_formats_for_the_viewer_locale(amount, currency, locale, expected):
    """Money.format writes minor units with the currency's decimals and the locale's symbols."""
    assert Money(amount, currency).format(locale) == expected
    assert format_money(amount, currency, locale) == expected


def test_money_str_is_the_english_format():
    """str(Money) is the English format, for logs and admin pages."""
    assert str(Money(250, "usd")) == "$2.50"


def test_money_decimal_uses_the_currency_exponent():
    """The decimal value shifts minor units by the currency's exponent: 2 for USD, 0 for KRW, 3 for KWD."""
    assert str(Money(250, "USD").decimal) == "2.50"
    assert str(Money(3000, "KRW").decimal) == "3000"
    assert str(Money(1234, "KWD").decimal) == "1.234"
    assert (currency_exponent("USD"), currency_exponent("KRW"), currency_exponent("JPY"), currency_exponent("KWD")) == (2, 0, 0, 3)


def test_money_adds_and_compares_within_one_currency():
    """Money adds, subtracts and compares only with money of the same currency."""
    assert Money(250, "USD") + Money(100, "USD") == Money(350, "USD")
    assert Money(250, "USD") - Money(100, "USD") == Money(150, "USD")
    assert Money(100, "USD") < Money(250, "USD")
    assert Money(100, "USD") <= Money(100, "USD")
    assert Money(250, "usd").as_dict() == {"amount": 250, "currency": "USD"}
    with pytest.raises(ValueError, match=exactly("currency mismatch: USD and EUR")):
        Money(250, "USD") + Money(100, "EUR")
    with pytest.raises(TypeError, match=exactly("cannot combine Money with int")):
        Money(250, "USD") + 1


@pytest.mark.parametrize("amount", [2.5, "250", True, None])
def test_money_refuses_anything_but_integer_minor_units(amount):
    """A Money amount is an int of minor units: floats, strings and booleans are programming errors."""
    with pytest.raises(TypeError, match=exactly("Money.amount must be an int of minor units")):
        Money(amount, "USD")


@pytest.mark.parametrize(
    ("code", "expected"), [("USD", "USD"), ("usd", "USD"), (" krw ", "KRW"), ("Kwd", "KWD")]
)
def test_currency_normalize_returns_the_upper_case_code(code, expected):
    """currency_normalize accepts any case and surrounding spaces and returns the ISO code."""
    assert currency_normalize(code) == expected


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("US", "Currency must be a three-letter ISO 4217 code such as USD."),
        ("US1", "Currency must be a three-letter ISO 4217 code such as USD."),
        ("DOLLARS", "Currency must be a three-letter ISO 4217 code such as USD."),
        ("", "Currency must be a three-letter ISO 4217 code such as USD."),
        (None, "Currency must be a three-letter ISO 4217 code such as USD."),
        (840, "Currency must be a three-letter ISO 4217 code such as USD."),
        ("XYZ", "Unknown currency: XYZ."),
        ("abc", "Unknown currency: ABC."),
    ],
)
def test_currency_normalize_refuses_what_is_not_a_currency(code, message):
    """Anything but a known three-letter code is refused with the currency field named."""
    with pytest.raises(InvalidCurrency, match=exactly(message)) as caught:
        currency_normalize(code, param="store.currency")
    assert caught.value.code == "invalid_currency"
    assert caught.value.param == "store.currency"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (2.5, "Amount must be a whole number of minor units."),
        ("250", "Amount must be a whole number of minor units."),
        (True, "Amount must be a whole number of minor units."),
        (-1, "Amount cannot be negative."),
        (MAX_AMOUNT + 1, "Amount is too large."),
    ],
)
def test_amount_validate_refuses_bad_minor_units(amount, message):
    """An amount from code or an API client must be a non-negative int no larger than MAX_AMOUNT."""
    with pytest.raises(InvalidAmount, match=exactly(message)):
        amount_validate(amount)


def test_amount_validate_accepts_zero_unless_told_not_to():
    """Zero is an amount (a free product) except where a positive amount is needed."""
    assert amount_validate(0) == 0
    assert amount_validate(MAX_AMOUNT) == MAX_AMOUNT
    with pytest.raises(InvalidAmount, match=exactly("Amount must be greater than zero.")):
        amount_validate(0, allow_zero=False)


# --- Money settings per currency ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "figure"),
    [("6843", "5000"), ("1.5", "2"), ("3", "2.5"), ("25", "25"), ("0.21", "0.2"), ("7", "5"),
     ("8", "10"), ("0.35", "0.25"), ("1", "1")],
)
def test_a_scaled_setting_is_rounded_to_a_round_figure(value, figure):
    """1, 2, 2.5 or 5 × 10^k, nearest by ratio: a KRW store's ₩6,843 is ₩5,000."""
    assert round_figure(Decimal(value)) == Decimal(figure)


@pytest.mark.parametrize(
    ("currency", "presets", "limits", "tab", "confirm", "tips"),
    [
        ("USD", [500, 1000, 2000], (500, 20000), (100, 500), 500, [100, 300, 500]),
        ("EUR", [500, 1000, 2000], (500, 20000), (100, 500), 500, [100, 300, 500]),
        ("BRL", [2500, 5000, 10000], (2500, 100000), (500, 2500), 2500, [500, 2000, 2500]),
        ("KRW", [5000, 10000, 20000], (5000, 200000), (1000, 5000), 5000, [1000, 2500, 5000]),
        ("JPY", [500, 1000, 2000], (500, 20000), (100, 500), 500, [100, 250, 500]),
        ("KWD", [2000, 2500, 5000], (2000, 50000), (250, 2000), 2000, [250, 1000, 2000]),
    ],
)
def test_money_settings_scale_to_each_currency(currency, presets, limits, tab, confirm, tips):
    """The dollar settings (top-ups 5/10/20 from 5 to 200, tabs 1 then 5, one click up to 5, tips
    1/3/5) in minor units of each currency: ₩5,000 top-ups, not ₩5."""
    assert money_setting_list("STALL_TOP_UP_PRESETS", currency) == presets
    assert (money_setting("STALL_TOP_UP_MIN", currency), money_setting("STALL_TOP_UP_MAX", currency)) == limits
    assert (money_setting("STALL_TAB_FIRST_LIMIT", currency), money_setting("STALL_TAB_LIMIT", currency)) == tab
    assert money_setting("STALL_WALLET_CONFIRM_ABOVE", currency) == confirm
    assert money_setting_list("STALL_TIP_PRESETS", currency) == tips


def test_an_operator_sets_a_money_setting_for_one_currency(settings):
    """STALL_TOP_UP_PRESETS_KRW and STALL_TAB_LIMIT_KRW, in won, replace the scaled figures for KRW
    only; a setting changed for all currencies scales with it."""
    settings.STALL_MONEY_OVERRIDES = {"STALL_TOP_UP_PRESETS_KRW": "3000,9000", "STALL_TAB_LIMIT_KRW": "12000"}
    settings.STALL_TOP_UP_MIN = "2"
    assert money_setting_list("STALL_TOP_UP_PRESETS", "KRW") == [3000, 9000]
    assert money_setting("STALL_TAB_LIMIT", "KRW") == 12000
    assert money_setting("STALL_TAB_LIMIT", "USD") == 500
    assert (money_setting("STALL_TOP_UP_MIN", "KRW"), money_setting("STALL_TOP_UP_MIN", "USD")) == (2000, 200)


def test_money_overrides_are_read_from_the_environment():
    """Only STALL_<money setting>_<CODE> variables become overrides."""
    code = (
        "import os; os.environ.update(STALL_TOP_UP_PRESETS_KRW='5000,10000', STALL_TAB_LIMIT_JPY='900', "
        "STALL_DOWNLOAD_LIMIT_KRW='3', STALL_TOP_UP_MIN_krw='1'); "
        "import stall.settings as s; print(sorted(s.STALL_MONEY_OVERRIDES.items()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[('STALL_TAB_LIMIT_JPY', '900'), ('STALL_TOP_UP_PRESETS_KRW', '5000,10000')]"

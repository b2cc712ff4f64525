"""Money: integer minor units plus an ISO 4217 code.

The number of minor units per major unit (the exponent) comes from Babel's CLDR data: USD has 2,
KRW and JPY 0, KWD 3. Amounts are never floats. ``parse_amount`` turns what a person types into
minor units and says clearly what is wrong with anything else.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel.numbers import (
    format_currency,
    get_currency_precision,
    get_currency_symbol,
    list_currencies,
)
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from .errors import InvalidRequest

# The largest amount Stall accepts anywhere: 10^12 - 1 minor units ($9,999,999,999.99 in USD).
# Far above any sale a creator makes, far below BigIntegerField's limit so sums cannot overflow.
MAX_AMOUNT = 10**12 - 1


class InvalidAmount(InvalidRequest):
    code = "invalid_amount"


class InvalidCurrency(InvalidRequest):
    code = "invalid_currency"


@lru_cache(maxsize=None)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def currency_normalize(code: object, *, param: str = "currency") -> str:
    """Return the upper-case ISO 4217 code, or raise InvalidCurrency."""
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{3}", code.strip()):
        raise InvalidCurrency("Currency must be a three-letter ISO 4217 code such as USD.", param=param)
    upper = code.strip().upper()
    if upper not in _known_currencies():
        raise InvalidCurrency(f"Unknown currency: {upper}.", param=param)
    return upper


@lru_cache(maxsize=None)
def currency_exponent(currency: str) -> int:
    return get_currency_precision(currency)


def amount_validate(amount: object, *, param: str = "amount", allow_zero: bool = True) -> int:
    """Check an amount in minor units given by code or an API client."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(gettext_noop("Amount must be a whole number of minor units."), param=param)
    if amount < 0:
        raise InvalidAmount(gettext_noop("Amount cannot be negative."), param=param)
    if amount == 0 and not allow_zero:
        raise InvalidAmount(gettext_noop("Amount must be greater than zero."), param=param)
    if amount > MAX_AMOUNT:
        raise InvalidAmount(gettext_noop("Amount is too large."), param=param)
    return amount


# Babel rebuilds the locale's number pattern and does the decimal arithmetic on every call, about
# 0.15 ms; a store shows the same few prices again and again (every one-click unlock's message
# formats its price), and the result depends on nothing but these three values.
@lru_cache(maxsize=4096)
def _formatted(amount: int, currency: str, locale: str) -> str:
    return format_currency(Decimal(amount).scaleb(-currency_exponent(currency)), currency, locale=locale)


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self):
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("Money.amount must be an int of minor units")
        object.__setattr__(self, "currency", currency_normalize(self.currency))

    @property
    def exponent(self) -> int:
        return currency_exponent(self.currency)

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.amount).scaleb(-self.exponent)

    def format(self, locale: str = "en") -> str:
        return _formatted(self.amount, self.currency, locale.replace("-", "_"))

    def __str__(self) -> str:
        return self.format()

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def as_dict(self) -> dict:
        return {"amount": self.amount, "currency": self.currency}


def prorate(total: int, part: int, whole: int) -> int:
    """``total × part ÷ whole`` in minor units, rounded half up; 0 when ``whole`` or ``total`` is 0.

    Every pro-rata share in Stall uses this one rule: a sale's share of a card fee, a refund's
    share of a platform fee. Shares taken on running totals (``prorate(t, after, w) -
    prorate(t, before, w)``) add up to exactly ``total`` once ``part`` reaches ``whole``.
    """
    if not whole or not total:
        return 0
    return int((Decimal(total) * part / whole).to_integral_value(ROUND_HALF_UP))


def amount_for_input(amount: int, currency: str, locale: str = "en") -> str:
    """An amount as a person would type it back in this locale ("7.50", "7,50", "3000"): no symbol,
    no grouping, the locale's decimal mark, so ``parse_amount`` reads it as the same amount."""
    exponent = currency_exponent(currency)
    text = f"{Decimal(amount).scaleb(-exponent):.{exponent}f}"
    return text.replace(".", _decimal_symbol(locale)) if exponent else text


def format_money(amount: int, currency: str, locale: str | None = None) -> str:
    """The amount for a reader: in ``locale``, or else in the active language (the buyer's on their
    pages, the recipient's in an email sent under ``translation.override``, English in the API)."""
    return Money(amount, currency).format(locale or translation.get_language() or settings.LANGUAGE_CODE)


_GROUPING = " \u00a0\u202f'’_"


@lru_cache(maxsize=None)
def _symbols(currency: str) -> frozenset[str]:
    symbols = {currency}
    for locale in ("en", "en_US", "ko", "ja", "pt_BR", "de", "fr", "ar"):
        try:
            symbols.add(get_currency_symbol(currency, locale=locale))
        except Exception:  # noqa: BLE001 - a locale without data for this currency just adds nothing
            pass
    return frozenset(s.strip() for s in symbols if s.strip())


@lru_cache(maxsize=None)
def _foreign_sign_chars(currency: str) -> frozenset[str]:
    """Currency signs that belong to other currencies' symbols and to none of ``currency``'s.

    A lone sign the tables do not know ("₺" for TRY) is accepted, but "€5" or "₩3000" typed for a
    USD price is refused: taking it as dollars would charge the buyer something they did not mean.
    """
    ours = "".join(_symbols(currency))
    signs = {
        ch for other in _known_currencies() if other != currency
        for symbol in _symbols(other) for ch in symbol if unicodedata.category(ch) == "Sc"
    }
    return frozenset(ch for ch in signs if ch not in ours)


def _decimal_symbol(locale: str) -> str:
    from babel.numbers import get_decimal_symbol

    try:
        return get_decimal_symbol(locale.replace("-", "_"))
    except Exception:  # noqa: BLE001 - unknown locale: fall back to the English point
        return "."


def parse_amount(text: object, currency: str, *, locale: str = "en", param: str = "amount") -> int:
    """Parse what a person typed ("2.50", "2,50", "₩3000", "$1,000") into minor units.

    Separators: when both "." and "," appear, the last one is the decimal mark. When one appears
    once and is followed by exactly three digits it is ambiguous ("1,000" or "1.000"); the
    locale's decimal mark decides. Any other single separator is the decimal mark, and a
    separator repeated ("1,000,000") groups thousands.
    """
    currency = currency_normalize(currency)
    if not isinstance(text, str):
        raise InvalidAmount(gettext_noop("Enter an amount."), param=param)
    # NFKC folds full-width digits and signs; U+2212 is the minus sign CLDR writes for some locales.
    raw = unicodedata.normalize("NFKC", text).replace("\u2212", "-").strip()
    if not raw:
        raise InvalidAmount(gettext_noop("Enter an amount."), param=param)
    match = re.fullmatch(r"(?P<pre>[^\d.,+\-]*?)\s*(?P<sign>[+\-]?)\s*(?P<pre2>[^\d.,+\-]*?)\s*(?P<num>[\d.,\s'’_\u00a0\u202f]*\d[\d.,]*)\s*(?P<post>[^\d.,]*)", raw)
    if not match:
        if raw.startswith("-") or "-" in raw[:3]:
            raise InvalidAmount(gettext_noop("Amount cannot be negative."), param=param)
        raise InvalidAmount(gettext("“%(text)s” is not an amount.") % {"text": text}, param=param)
    if match["sign"] == "-":
        raise InvalidAmount(gettext_noop("Amount cannot be negative."), param=param)
    for affix in (match["pre"], match["pre2"], match["post"]):
        affix = affix.strip()
        if affix and affix not in _symbols(currency) and not (
            len(affix) == 1 and unicodedata.category(affix) == "Sc" and affix not in _foreign_sign_chars(currency)
        ):
            raise InvalidAmount(gettext("“%(text)s” is not an amount in %(currency)s.") % {"text": text, "currency": currency}, param=param)

    num = "".join(ch for ch in match["num"] if ch not in _GROUPING)
    exponent = currency_exponent(currency)
    integer, fraction = _split_number(num, locale=locale, text=text, param=param)
    if not integer and not fraction:
        raise InvalidAmount(gettext("“%(text)s” is not an amount.") % {"text": text}, param=param)
    if len(fraction) > exponent:
        if exponent == 0:
            raise InvalidAmount(gettext("%(currency)s has no minor unit; enter a whole amount.") % {"currency": currency}, param=param)
        raise InvalidAmount(gettext("%(currency)s amounts have at most %(places)s decimal places.") % {"currency": currency, "places": exponent}, param=param)
    digits = (integer or "0") + fraction.ljust(exponent, "0")
    if len(digits.lstrip("0")) > len(str(MAX_AMOUNT)):
        raise InvalidAmount(gettext_noop("Amount is too large."), param=param)
    amount = int(digits)
    if amount > MAX_AMOUNT:
        raise InvalidAmount(gettext_noop("Amount is too large."), param=param)
    return amount


def _split_number(num: str, *, locale: str, text: str, param: str) -> tuple[str, str]:
    seps = [ch for ch in num if ch in ".,"]
    if not seps:
        return num, ""
    kinds = set(seps)
    if len(kinds) == 2:
        decimal_mark = num[max(num.rfind("."), num.rfind(","))]
        group_mark = "," if decimal_mark == "." else "."
        if seps.count(decimal_mark) > 1:
            raise InvalidAmount(gettext("“%(text)s” is not an amount.") % {"text": text}, param=param)
        integer, fraction = num.rsplit(decimal_mark, 1)
        return _ungroup(integer, group_mark, text, param), fraction
    mark = seps[0]
    if len(seps) > 1:
        return _ungroup(num, mark, text, param), ""
    integer, fraction = num.split(mark)
    if len(fraction) == 3 and integer and mark != _decimal_symbol(locale):
        return _ungroup(num, mark, text, param), ""
    return integer, fraction


def _ungroup(num: str, mark: str, text: str, param: str) -> str:
    groups = num.split(mark)
    if not groups[0] or len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]):
        raise InvalidAmount(gettext("“%(text)s” is not an amount.") % {"text": text}, param=param)
    return "".join(groups)


def major_to_minor(major: str, currency: str) -> int:
    """A setting written in major units ("5", "0.50") as minor units of ``currency``."""
    return int(Decimal(major).scaleb(currency_exponent(currency)))


# --- Money settings per currency -----------------------------------------------------------------
#
# The operator writes money settings once, in dollars' worth of major units ("top-ups from 5 to
# 200"), and a KRW store must not then offer ₩5 top-ups and a ₩1 tab. Each currency's default is
# the setting times roughly what a dollar is worth in that currency, rounded to a round figure
# (1, 2, 2.5 or 5 × 10^k, so ₩5,000 and not ₩6,843): an order of magnitude, not an exchange rate.
# A currency the table does not name keeps the figures as written. The operator overrides any
# setting for one currency with STALL_<SETTING>_<CODE> (STALL_TOP_UP_PRESETS_KRW=5000,10000,20000),
# in that currency's major units.

DOLLAR_SCALE: dict[str, Decimal] = {
    code: Decimal(scale) for code, scale in {
        "USD": "1", "EUR": "1", "GBP": "1", "CHF": "1", "CAD": "1", "AUD": "1", "NZD": "1", "SGD": "1",
        "BRL": "5", "PLN": "4", "ILS": "4", "AED": "4", "SAR": "4", "MYR": "5", "CNY": "7", "HKD": "8",
        "DKK": "7", "SEK": "10", "NOK": "10", "MXN": "20", "ZAR": "20", "CZK": "20", "TWD": "30",
        "THB": "30", "TRY": "30", "PHP": "50", "INR": "100", "JPY": "100", "HUF": "300",
        "KRW": "1000", "CLP": "1000", "ARS": "1000", "COP": "4000", "IDR": "10000", "VND": "20000",
        "KWD": "0.3", "BHD": "0.4", "OMR": "0.4", "JOD": "0.7", "RON": "5", "BGN": "2", "PEN": "4",
        "MAD": "10", "GHS": "10", "EGP": "30", "UAH": "40", "UYU": "40", "RUB": "100", "KES": "100",
        "ISK": "100", "BDT": "100", "PKR": "300", "LKR": "300", "XOF": "500", "XAF": "500",
        "CRC": "500", "NGN": "1000",
    }.items()
}
_ROUND_FIGURES = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


def round_figure(value: Decimal) -> Decimal:
    """The round figure (1, 2, 2.5 or 5 × 10^k) nearest to ``value`` by ratio: 6,843 → 5,000."""
    if value <= 0:
        return Decimal(0)
    power = Decimal(10) ** (value.adjusted())
    mantissa = value / power
    best = min(_ROUND_FIGURES, key=lambda figure: max(figure / mantissa, mantissa / figure))
    return (best * power).normalize()


def money_setting_major(written: str, currency: str, *, override: str | None = None) -> Decimal:
    """A money setting written in dollars' worth of major units, for ``currency``: ``override`` (the
    operator's figure for that currency) as it is, else scaled by DOLLAR_SCALE and rounded."""
    if override not in (None, ""):
        return Decimal(override)
    scale = DOLLAR_SCALE.get(currency)
    if scale is None or scale == 1:
        return Decimal(written)
    return round_figure(Decimal(written) * scale)


def money_to_minor(major: Decimal, currency: str) -> int:
    """Major units to minor units of ``currency``, rounded half up, at least 1 when positive."""
    minor = int(major.scaleb(currency_exponent(currency)).to_integral_value(ROUND_HALF_UP))
    return max(1, minor) if major > 0 else minor


def money_setting(name: str, currency: str) -> int:
    """The money setting ``name`` (STALL_TOP_UP_MIN, …) for ``currency``, in its minor units."""
    return money_to_minor(_setting_major(name, currency, _written(name)), currency)


def money_setting_list(name: str, currency: str) -> list[int]:
    """A list money setting (STALL_TOP_UP_PRESETS) for ``currency``, in minor units, each once."""
    override = settings.STALL_MONEY_OVERRIDES.get(f"{name}_{currency}")
    if override:
        figures = [Decimal(part) for part in override.split(",") if part.strip()]
    else:
        figures = [money_setting_major(part, currency) for part in _written(name)]
    return list(dict.fromkeys(money_to_minor(figure, currency) for figure in figures))


def _written(name: str):
    return getattr(settings, name)


def _setting_major(name: str, currency: str, written: str) -> Decimal:
    return money_setting_major(written, currency, override=settings.STALL_MONEY_OVERRIDES.get(f"{name}_{currency}"))

"""Dates and times for a reader, by Babel in the active language, on the site's clock (UTC).

English reads as the pages always did ("Jan 5, 2025, 14:30"); Korean and Brazilian Portuguese get
their own order and words ("2025. 1. 5. 14:30", "5 de jan. de 2025 14:30"). Times are 24-hour in
every language, because the pages say "UTC" beside them.
"""

from datetime import date, datetime

from babel import Locale
from babel.dates import format_date, format_skeleton
from django.conf import settings
from django.utils import timezone, translation


def _locale() -> Locale:
    return Locale.parse((translation.get_language() or settings.LANGUAGE_CODE).replace("-", "_"))


def _clock(value: datetime, locale: Locale) -> str:
    return format_skeleton("Hm", value, tzinfo=timezone.get_current_timezone(), locale=locale)


def _local(value: date) -> date:
    return timezone.localtime(value) if isinstance(value, datetime) and timezone.is_aware(value) else value


def date_format(value: date | None) -> str:
    """"Jan 5, 2025" / "2025. 1. 5." / "5 de jan. de 2025"."""
    return format_date(_local(value), "medium", locale=_locale()) if value else ""


def datetime_format(value: datetime | None) -> str:
    """"Jan 5, 2025, 14:30": the date and a 24-hour time, joined as the language joins them."""
    if not value:
        return ""
    locale = _locale()
    return locale.datetime_formats["medium"].format(_clock(value, locale), format_date(_local(value), "medium", locale=locale))


def month_day_format(value: date | None) -> str:
    """"Jan 5" / "1월 5일" / "5 de jan."."""
    return format_skeleton("MMMd", _local(value), locale=_locale()) if value else ""


def month_year_format(value: date | None) -> str:
    """"January 2025" / "2025년 1월" / "janeiro de 2025"."""
    return format_skeleton("yMMMM", _local(value), locale=_locale()) if value else ""


def month_day_time_format(value: datetime | None) -> str:
    """"Jan 5, 14:30" / "1월 5일 14:30"."""
    if not value:
        return ""
    locale = _locale()
    return locale.datetime_formats["medium"].format(_clock(value, locale), format_skeleton("MMMd", _local(value), locale=locale))


def time_format(value: datetime | None) -> str:
    """"14:30"."""
    return _clock(value, _locale()) if value else ""

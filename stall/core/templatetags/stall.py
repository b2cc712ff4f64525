from django import template
from django.utils.translation import gettext

from stall.core import dates
from stall.core.markdown import render_markdown
from stall.core.money import format_money

register = template.Library()


@register.simple_tag
def money(amount, currency):
    """Format minor units in the active language (the viewer's, or an email's recipient's):
    {% money order.amount_total order.currency %}, or {% money p c as price %} for a blocktranslate."""
    if amount is None:
        return ""
    return format_money(int(amount), currency)


@register.filter
def markdown(text):
    return render_markdown(text)


@register.filter
def filesize(size):
    size = int(size or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


# Dates in the active language by Babel: {{ order.created_at|local_datetime }} (see stall.core.dates).
register.filter("local_date", dates.date_format)
register.filter("local_datetime", dates.datetime_format)
register.filter("local_month_day", dates.month_day_format)
register.filter("local_month", dates.month_year_format)
register.filter("local_month_day_time", dates.month_day_time_format)
register.filter("local_time", dates.time_format)


@register.filter
def translated(message):
    """A message kept in English where it was made (a rail's decline stored on the checkout, an
    error's message): the viewer's translation when the catalog has one, else as it is."""
    return gettext(str(message)) if message else message

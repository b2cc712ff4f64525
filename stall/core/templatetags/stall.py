from django import template

from stall.core.markdown import render_markdown
from stall.core.money import format_money

register = template.Library()


@register.simple_tag(takes_context=True)
def money(context, amount, currency):
    """Format minor units for the viewer's language: {% money order.amount_total order.currency %}."""
    request = context.get("request")
    locale = getattr(request, "LANGUAGE_CODE", None) or "en"
    if amount is None:
        return ""
    return format_money(int(amount), currency, locale=locale)


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

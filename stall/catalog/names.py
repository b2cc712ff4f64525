"""A product's name as a reader sees it.

A membership tier's price is sold as a product named "<tier> (<interval>)", in English: the name
the API answers with, snapshotted on checkout and order lines. Pages and emails show the interval
in the reader's language instead (``product_name_shown``, or the ``product_name`` template filter),
so a Korean receipt says "Kova (월간)". The English words are written in one place, here, for
memberships to name its products with and for the display to recognise.
"""

from __future__ import annotations

import re

from django.utils.translation import pgettext_lazy

# interval ("week", "month", "year") -> the word in the product's name, and its translation.
INTERVAL_WORDS = {"week": "weekly", "month": "monthly", "year": "yearly"}
_SHOWN = {
    "weekly": pgettext_lazy("membership interval, in a product's name", "weekly"),
    "monthly": pgettext_lazy("membership interval, in a product's name", "monthly"),
    "yearly": pgettext_lazy("membership interval, in a product's name", "yearly"),
}
_SUFFIX = re.compile(r"(?P<name>.+) \((?P<word>weekly|monthly|yearly)\)", re.S)
MAX_NAME = 120


def membership_product_name(*, tier_name: str, interval: str) -> str:
    """The product name of a tier's price for ``interval``: "Kova (monthly)"."""
    return f"{tier_name} ({INTERVAL_WORDS[interval]})"[:MAX_NAME]


def product_name_shown(name: str) -> str:
    """``name`` with a membership's interval in the active language; any other name as it is.
    (A product a creator named "Digest (monthly)" themselves reads the same in translation.)"""
    match = _SUFFIX.fullmatch(name or "")
    if match is None:
        return name
    return f"{match['name']} ({_SHOWN[match['word']]})"

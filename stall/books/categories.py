"""Expense categories: the lines of the US Schedule C (Profit or Loss From Business), which most
bookkeeping tools use as their list, plus "software", which a creator's books need most, and what
the creator adds."""

from django.utils.text import slugify

from .errors import BooksInvalid, UnknownCategory
from .models import ExpenseCategory

DEFAULTS: dict[str, str] = {
    "advertising": "Advertising",
    "car_truck": "Car and truck expenses",
    "commissions_fees": "Commissions and fees",
    "contract_labor": "Contract labor",
    "depreciation": "Depreciation",
    "insurance": "Insurance",
    "interest": "Interest",
    "legal_professional": "Legal and professional services",
    "office": "Office expense",
    "rent_lease": "Rent or lease",
    "repairs": "Repairs and maintenance",
    "supplies": "Supplies",
    "taxes_licenses": "Taxes and licenses",
    "travel": "Travel",
    "meals": "Meals",
    "utilities": "Utilities",
    "wages": "Wages",
    "software": "Software and subscriptions",
    "other": "Other expenses",
}


def categories_for_store(*, store) -> dict[str, str]:
    """Code → name: the defaults, then the store's own."""
    own = dict(ExpenseCategory.objects.filter(store=store).values_list("code", "name"))
    return {**DEFAULTS, **own}


def category_resolve(*, store, value: str, known: dict[str, str] | None = None) -> str:
    """The code of the category written as ``value`` (its code or its name, any case)."""
    known = categories_for_store(store=store) if known is None else known
    text = (value or "").strip()
    if text in known:
        return text
    by_name = {name.casefold(): code for code, name in known.items()}
    if text.casefold() in by_name:
        return by_name[text.casefold()]
    raise UnknownCategory(f"No expense category “{text}”. Add it under Categories first.", param="category")


def category_create(*, store, name: str) -> ExpenseCategory:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise BooksInvalid("A category needs a name of at most 80 characters.", param="name")
    code = slugify(name).replace("-", "_")[:40]
    if not code:
        raise BooksInvalid("A category's name needs a letter or a digit.", param="name")
    known = categories_for_store(store=store)
    if code in known or name.casefold() in {n.casefold() for n in known.values()}:
        raise BooksInvalid(f"There is already a category “{name}”.", param="name")
    return ExpenseCategory.objects.create(store=store, code=code, name=name)

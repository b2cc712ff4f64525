from django.utils.translation import gettext_noop

from stall.core.errors import InvalidRequest, NotFound


class BooksInvalid(InvalidRequest):
    code = "invalid_books"


class SplitTooLarge(InvalidRequest):
    code = "split_over_100"
    default_message = gettext_noop("The tax reserve and the envelopes add up to more than 100%.")


class ExpenseInvalid(InvalidRequest):
    code = "invalid_expense"


class UnknownCategory(InvalidRequest):
    code = "unknown_category"
    default_message = gettext_noop("No such expense category.")


class CsvInvalid(InvalidRequest):
    code = "invalid_csv"


class ExpenseNotFound(NotFound):
    default_message = gettext_noop("No such expense.")


class EnvelopeNotFound(NotFound):
    default_message = gettext_noop("No such envelope.")

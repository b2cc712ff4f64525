from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class CommissionNotFound(NotFound):
    default_message = gettext_noop("No such commission.")


class NotACommission(InvalidRequest):
    code = "not_a_commission"
    default_message = gettext_noop("This order is not a commission: only orders of a service product are delivered.")


class CommissionInvalid(InvalidRequest):
    code = "invalid_commission"


class CommissionStateConflict(Conflict):
    """The commission is not in the state the action needs (accepting twice, delivering a declined one)."""

    code = "commission_state"


class CommissionSlotsFull(Conflict):
    code = "commission_slots_full"
    default_message = gettext_noop("All commission slots are taken for now. Try again when one opens.")

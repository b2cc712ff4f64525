from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class MeterNotFound(NotFound):
    default_message = gettext_noop("No such meter.")


class PlanNotFound(NotFound):
    default_message = gettext_noop("No such plan.")


class UsageSubscriptionNotFound(NotFound):
    default_message = gettext_noop("No such usage subscription.")


class CustomerNotFound(NotFound):
    default_message = gettext_noop("No such customer.")


class MeterInvalid(InvalidRequest):
    code = "invalid_meter"


class PlanInvalid(InvalidRequest):
    code = "invalid_plan"


class UsageSubscriptionInvalid(InvalidRequest):
    code = "invalid_usage_subscription"


class EventsInvalid(InvalidRequest):
    """The batch as a whole is refused (not a list, more than 1,000 events): nothing is recorded."""

    code = "invalid_events"


class MeterKeyTaken(Conflict):
    code = "meter_key_taken"
    default_message = gettext_noop("This store already has a meter with this key.")


class AlreadySubscribed(Conflict):
    code = "already_subscribed"
    default_message = gettext_noop("This customer already has a usage subscription.")

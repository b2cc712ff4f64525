from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class TierNotFound(NotFound):
    default_message = gettext_noop("No such tier.")


class SubscriptionNotFound(NotFound):
    default_message = gettext_noop("No such subscription.")


class TierInvalid(InvalidRequest):
    code = "invalid_tier"


class TierArchived(Conflict):
    code = "tier_archived"
    default_message = gettext_noop("This tier is archived: it takes no new members.")


class MemberLimitReached(Conflict):
    code = "member_limit_reached"
    default_message = gettext_noop("This tier is full: it has reached its member limit.")


class AlreadyMember(Conflict):
    code = "already_member"
    default_message = gettext_noop("You are already a member of this store.")


class SubscriptionInvalid(InvalidRequest):
    code = "invalid_subscription"


class SubscriptionStateInvalid(Conflict):
    """The change does not fit the subscription's state (resuming one not paused, ...)."""

    code = "subscription_state_invalid"

from django.utils.translation import gettext_noop

from stall.core.errors import Conflict, InvalidRequest, NotFound


class PostNotFound(NotFound):
    default_message = gettext_noop("No such post.")


class PostInvalid(InvalidRequest):
    code = "invalid_post"


class UnlockRefundInvalid(InvalidRequest):
    code = "invalid_refund_request"


class UnlockRefundRefused(Conflict):
    """A reader's refund of an unlock that the rules do not allow; ``code`` says which rule."""

    code = "unlock_refund_refused"


class TipJarNotFound(NotFound):
    code = "tip_jar_missing"
    default_message = gettext_noop("This store does not take tips.")


class TipJarInvalid(InvalidRequest):
    code = "invalid_tip_jar"


class TipInvalid(InvalidRequest):
    code = "invalid_tip"


class CardNotAllowed(InvalidRequest):
    code = "amount_too_small"


class ConfirmRequired(Conflict):
    """A wallet spend above the buyer's one-click limit: ask them, then call again with confirmed=True."""

    code = "confirmation_required"
    default_message = gettext_noop("Confirm this payment from your wallet.")


class MembersOnly(Conflict):
    """A free post gated to membership tiers, asked for by a reader who is not a member."""

    code = "members_only"
    default_message = gettext_noop("This post is for members: join a tier to read it.")

from django.utils.translation import gettext_noop

from stall.core.errors import InvalidRequest


class AudienceInvalid(InvalidRequest):
    code = "audience_invalid"


class ImportInvalid(InvalidRequest):
    """The file as a whole cannot be read (wrong columns, not a CSV); bad rows are reported, not raised."""

    code = "import_invalid"


class TokenInvalid(InvalidRequest):
    code = "token_invalid"
    default_message = gettext_noop("This link is not valid or has expired.")


class BroadcastInvalid(InvalidRequest):
    code = "broadcast_invalid"

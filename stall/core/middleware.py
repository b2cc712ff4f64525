from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.utils import translation


class ContentSecurityPolicyMiddleware:
    """A strict CSP: everything from this origin, nothing from third parties, no inline script.

    The API docs page loads Swagger UI from Ninja's bundled static files, so it needs no exception.
    A view may widen it for its own response only, with ``request.csp_extra``, and let the origins a
    creator listed frame it with ``frame_ancestors_allow`` (the embedded checkout); every other
    response keeps ``frame-ancestors 'none'`` and X-Frame-Options DENY.
    """

    POLICY = (
        "default-src 'self'; img-src 'self' data: blob: https:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        extra = getattr(request, "csp_extra", None)
        ancestors = getattr(request, "frame_ancestors", None)
        if ancestors:
            extra = {**(extra or {}), "frame-ancestors": ancestors}
            # Runs before XFrameOptionsMiddleware on the way out (it is listed after it), so its DENY
            # is skipped for this response only; the CSP above names who may frame it instead.
            response.xframe_options_exempt = True
        response.headers.setdefault("Content-Security-Policy", self.policy_with(extra) if extra else self.POLICY)
        return response

    @classmethod
    def policy_with(cls, extra: dict[str, list[str]]) -> str:
        """The policy with more sources for some directives, for the one page that needs them (the
        Stripe payment page sets ``request.csp_extra``). A directive the policy leaves to
        default-src starts from default-src's sources, so adding a source never drops 'self'."""
        directives: dict[str, list[str]] = {}
        for part in cls.POLICY.split(";"):
            name, *sources = part.split()
            directives[name] = sources
        for name, sources in extra.items():
            if directives.get(name) == ["'none'"]:
                directives[name] = []  # 'none' stands alone: a source added to it replaces it
            current = directives.setdefault(name, list(directives["default-src"]))
            current.extend(source for source in sources if source not in current)
        return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


def frame_ancestors_allow(request, origins) -> None:
    """Let these origins (a store's embed origins, already validated) frame this request's response;
    none leaves the response unframeable."""
    request.frame_ancestors = [origin for origin in origins if origin]


class EnglishOnlyMiddleware:
    """The API and the creator's pages speak English whatever the browser asks, as Stripe's API
    does: an integration parses the same messages everywhere, and a creator's page does not mix
    translated errors into untranslated screens. After LocaleMiddleware, which chose the buyer's."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(settings.STALL_ENGLISH_ONLY_PATHS):
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)


API_PATH = "/api/"


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's flash messages, for pages only: an API answer is JSON that shows none, and making
    the message storage (a cookie signer and a session store, each request) cost more than any
    other middleware of an API request. Its response side already passes over a request with no
    storage."""

    def process_request(self, request):
        if not request.path_info.startswith(API_PATH):
            super().process_request(request)


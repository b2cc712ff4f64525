from django.conf import settings
from django.utils import translation


class ContentSecurityPolicyMiddleware:
    """A strict CSP: everything from this origin, nothing from third parties, no inline script.

    The API docs page loads Swagger UI from Ninja's bundled static files, so it needs no exception.
    A view may widen it for its own response only, with ``request.csp_extra``.
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
            current = directives.setdefault(name, list(directives["default-src"]))
            current.extend(source for source in sources if source not in current)
        return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


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

class ContentSecurityPolicyMiddleware:
    """A strict CSP: everything from this origin, nothing from third parties, no inline script.

    The API docs page loads Swagger UI from Ninja's bundled static files, so it needs no exception.
    """

    POLICY = (
        "default-src 'self'; img-src 'self' data: blob: https:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.POLICY)
        return response

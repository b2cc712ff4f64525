"""The buy button a creator pastes into their own site: a plain link styled as a button (inline
styles, so it needs nothing from the page or from us to look like one, and works without
JavaScript), followed by the optional script that opens the checkout in an overlay instead."""

from django.urls import reverse
from django.utils.html import format_html

# Inline so the button looks the same on any page; a creator may edit it in the pasted code.
BUTTON_STYLE = (
    "display:inline-block;padding:.7em 1.3em;border-radius:8px;background:#1f4fd1;color:#fff;"
    "font:600 16px/1.2 system-ui,-apple-system,sans-serif;text-decoration:none"
)


def embed_button(request, *, path: str, label: str) -> dict:
    """The snippet for a link to ``path`` on this Stall (the code to copy) and the button alone
    (its preview on the dashboard page, without the script)."""
    button = format_html('<a href="{}" data-stall-overlay style="{}">{}</a>',
                         request.build_absolute_uri(path), BUTTON_STYLE, label)
    script = format_html('<script src="{}" async></script>', request.build_absolute_uri(reverse("stores:embed_js")))
    return {"code": f"{button}\n{script}", "button": button}

"""The buyer's language, kept on a row for the emails sent later by the worker.

A page's language is active while the buyer acts (LocaleMiddleware chose it; the API and the
creator's pages are English). A row that leads to an email sent later, outside any request (a
checkout's receipt, a wallet's failed automatic top-up, a tab overdue, a membership's dunning),
keeps that language, and the task sends under ``translation.override(language_for(row.language))``.
"""

from django.conf import settings
from django.utils import translation


def language_to_record() -> str:
    """The active language, to keep on a row: "" for the default (English), as Checkout.language."""
    language = translation.get_language() or ""
    return "" if language == settings.LANGUAGE_CODE else language


def language_for(recorded: str | None) -> str:
    """The language to send an email in, from what a row recorded ("" is the default)."""
    return recorded or settings.LANGUAGE_CODE

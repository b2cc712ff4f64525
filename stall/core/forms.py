from django import forms
from django.utils.translation import gettext

from stall.core.errors import StallError


def form_add_stall_error(form: forms.Form, exc: StallError) -> None:
    """Show a domain error next to the field it names, or at the top of the form."""
    field = exc.param if exc.param in form.fields else None
    form.add_error(field, gettext(str(exc.message)))  # a rail's English message, translated if known

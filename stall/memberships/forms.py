"""Member-side forms: joining a tier and managing a membership. They only parse what a person
sent; the services check the rules, so the pages say what the API says. Labels and errors are in
the reader's language."""

from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .services import MAX_PAUSE_PERIODS

JOIN_CHOICES = [("wallet", _("Wallet")), ("card", _("Card"))]


class JoinForm(forms.Form):
    method = forms.ChoiceField(choices=JOIN_CHOICES, error_messages={
        "required": _("Choose how to pay."), "invalid_choice": _("Choose how to pay: wallet or card.")})
    # Checked by the service: an interval the tier does not offer is refused with its own message.
    interval = forms.CharField(required=False, max_length=20)
    email = forms.EmailField(label=_("Your email"), required=False, help_text=_("Receipts and the link to manage your membership go here."),
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    payment_method = forms.ChoiceField(label=_("Card to charge when the trial ends"), required=False, choices=(),
                                       widget=forms.RadioSelect)
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, cards=(), signed_in: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.signed_in = signed_in
        self.fields["payment_method"].choices = list(cards)

    def clean(self):
        data = super().clean()
        if data.get("method") == "card" and not self.signed_in and not data.get("email") and "email" not in self.errors:
            self.add_error("email", _("Enter your email: your receipt and the link to manage your membership go there."))
        return data


class PayWithForm(forms.Form):
    pay_with = forms.ChoiceField(label=_("Pay renewals"), choices=[("wallet", _("From my wallet (no card fee)")), ("card", _("By card"))],
                                 widget=forms.RadioSelect, error_messages={"required": _("Choose how to pay renewals.")})
    payment_method = forms.ChoiceField(label=_("Card"), required=False, choices=())
    card_fallback = forms.BooleanField(label=_("Charge the card when my wallet cannot pay a renewal"), required=False)

    def __init__(self, *args, cards=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"].choices = [("", _("Keep my saved card")), *cards]


def _periods(n: int) -> str:
    return ngettext("%(count)s period", "%(count)s periods", n) % {"count": n}


def _pause_range() -> str:
    return ngettext("Pause for 1 to %(max)s period.", "Pause for 1 to %(max)s periods.", MAX_PAUSE_PERIODS) % {"max": MAX_PAUSE_PERIODS}


# Translated when shown, not at import.
_periods_lazy = lazy(_periods, str)


class PauseForm(forms.Form):
    periods = forms.TypedChoiceField(
        label=_("Pause for"), coerce=int, choices=[(n, _periods_lazy(n)) for n in range(1, MAX_PAUSE_PERIODS + 1)],
        error_messages={
            "invalid_choice": lazy(_pause_range, str)(),
            "required": _("Choose how long to pause."),
        },
    )


class ChangeForm(forms.Form):
    tier = forms.CharField(max_length=40)
    interval = forms.CharField(required=False, max_length=20)

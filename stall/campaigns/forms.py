"""Backer-side forms: they only parse what a person sent; the services check the rules, so the
pages say what the API says."""

from django import forms
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from stall.core.errors import StallError
from stall.core.money import parse_amount


class AmountField(forms.CharField):
    """An amount typed by a person ("0.25", "10") read in the campaign's currency."""

    def __init__(self, *args, currency: str = "USD", **kwargs):
        self.currency = currency
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        try:
            return parse_amount(value, self.currency, locale=translation.get_language() or "en")
        except StallError as exc:
            raise forms.ValidationError(gettext(str(exc.message))) from None


class PledgeForm(forms.Form):
    tier = forms.CharField(required=False, max_length=40)
    amount = AmountField(label=_("Amount"), max_length=20, error_messages={"required": _("Enter how much to pledge.")})
    message = forms.CharField(label=_("Public message (optional)"), required=False, max_length=500,
                              widget=forms.Textarea(attrs={"rows": 2}))
    method = forms.ChoiceField(choices=[("wallet", _("Wallet")), ("card", _("Card"))], error_messages={
        "required": _("Choose how to pay."), "invalid_choice": _("Choose how to pay: wallet or card.")})
    payment_method = forms.ChoiceField(label=_("Card"), required=False, choices=(), widget=forms.RadioSelect)

    def __init__(self, *args, currency: str = "USD", cards=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].currency = currency
        self.fields["payment_method"].choices = list(cards)


class PledgeChangeForm(forms.Form):
    tier = forms.CharField(required=False, max_length=40)
    amount = AmountField(label=_("Amount"), max_length=20, error_messages={"required": _("Enter how much to pledge.")})
    message = forms.CharField(label=_("Public message"), required=False, max_length=500,
                              widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, currency: str = "USD", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].currency = currency

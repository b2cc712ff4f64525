"""Reader-side forms. They only parse what a person typed; the services check the rules, so the
messages are the same on the pages and in the API."""

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from stall.core.errors import StallError
from stall.core.money import parse_amount

METHOD_CHOICES = [("wallet", _("Wallet")), ("tab", _("Tab")), ("card", _("Card"))]


class UnlockForm(forms.Form):
    method = forms.ChoiceField(choices=METHOD_CHOICES, error_messages={"required": _("Choose how to pay."), "invalid_choice": _("Choose how to pay.")})
    email = forms.EmailField(label=_("Your email"), required=False, help_text=_("Your receipt and a link to read it again go here."),
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class RefundRequestForm(forms.Form):
    reason = forms.CharField(
        label=_("Why do you want your money back?"), required=False, strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": 255}),
        help_text=_("Up to 255 characters; the creator reads it."),
    )


class SignInForm(forms.Form):
    email = forms.EmailField(label=_("Your email"), widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class TipForm(forms.Form):
    preset = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    amount = forms.CharField(label=_("Amount"), required=False,
                             widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": _("Other amount")}))
    message = forms.CharField(label=_("Message (optional)"), required=False, strip=True,
                              widget=forms.Textarea(attrs={"rows": 2, "maxlength": 500}))
    name = forms.CharField(label=_("Your name (optional)"), required=False, strip=True,
                           widget=forms.TextInput(attrs={"maxlength": 80, "autocomplete": "name"}))
    public = forms.BooleanField(label=_("Show my name and message in the supporters list"), required=False, initial=True)
    email = forms.EmailField(label=_("Your email"), required=False, widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    method = forms.ChoiceField(choices=METHOD_CHOICES, error_messages={"required": _("Choose how to pay."), "invalid_choice": _("Choose how to pay.")})
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, currency: str, locale: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.locale = locale
        self.fields["amount"].label = _("Amount (%(currency)s)") % {"currency": currency}

    def clean(self):
        data = super().clean()
        text = (self.data.get("amount") or "").strip()
        if text:
            try:
                data["tip_amount"] = parse_amount(text, self.currency, locale=self.locale)
            except StallError as exc:
                self.add_error("amount", gettext(str(exc.message)))
        elif data.get("preset"):
            data["tip_amount"] = data["preset"]
        elif "preset" not in self.errors:
            self.add_error("amount", gettext("Choose an amount or type one."))
        return data

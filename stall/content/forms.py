"""Reader-side forms. They only parse what a person typed; the services check the rules, so the
messages are the same on the pages and in the API."""

from django import forms

from stall.core.errors import StallError
from stall.core.money import parse_amount

METHOD_CHOICES = [("wallet", "Wallet"), ("tab", "Tab"), ("card", "Card")]


class UnlockForm(forms.Form):
    method = forms.ChoiceField(choices=METHOD_CHOICES, error_messages={"required": "Choose how to pay.", "invalid_choice": "Choose how to pay."})
    email = forms.EmailField(label="Your email", required=False, help_text="Your receipt and a link to read it again go here.",
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class RefundRequestForm(forms.Form):
    reason = forms.CharField(
        label="Why do you want your money back?", required=False, strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": 255}),
        help_text="Up to 255 characters; the creator reads it.",
    )


class SignInForm(forms.Form):
    email = forms.EmailField(label="Your email", widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    next = forms.CharField(required=False, widget=forms.HiddenInput)


class TipForm(forms.Form):
    preset = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    amount = forms.CharField(label="Amount", required=False,
                             widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "Other amount"}))
    message = forms.CharField(label="Message (optional)", required=False, strip=True,
                              widget=forms.Textarea(attrs={"rows": 2, "maxlength": 500}))
    name = forms.CharField(label="Your name (optional)", required=False, strip=True,
                           widget=forms.TextInput(attrs={"maxlength": 80, "autocomplete": "name"}))
    public = forms.BooleanField(label="Show my name and message in the supporters list", required=False, initial=True)
    email = forms.EmailField(label="Your email", required=False, widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    method = forms.ChoiceField(choices=METHOD_CHOICES, error_messages={"required": "Choose how to pay.", "invalid_choice": "Choose how to pay."})
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, currency: str, locale: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.locale = locale
        self.fields["amount"].label = f"Amount ({currency})"

    def clean(self):
        data = super().clean()
        text = (self.data.get("amount") or "").strip()
        if text:
            try:
                data["tip_amount"] = parse_amount(text, self.currency, locale=self.locale)
            except StallError as exc:
                self.add_error("amount", exc.message)
        elif data.get("preset"):
            data["tip_amount"] = data["preset"]
        elif "preset" not in self.errors:
            self.add_error("amount", "Choose an amount or type one.")
        return data

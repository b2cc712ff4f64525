from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import password_validators_help_texts
from django.core.exceptions import ValidationError
from django.utils.functional import lazy

from stall.core.limits import RateLimited, client_address

from .services import login_attempt_count


def _password_help_text() -> str:
    return " ".join(password_validators_help_texts())


class SignupForm(forms.Form):
    email = forms.EmailField(
        label="Email", max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email", "autofocus": True}),
    )
    name = forms.CharField(label="Your name", max_length=120, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        # Lazy: asking the validators for their help makes them, and CommonPasswordValidator
        # reads Django's 20,000 common passwords into a set (~1.7 MB RSS) that every web worker
        # would hold from import; now only one that shows the signup page or checks a password.
        help_text=lazy(_password_help_text, str)(),
    )


class EmailAuthenticationForm(AuthenticationForm):
    """Django's login form, asking for the email (stored lower-case) instead of a username."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password do not match an account. Check both and try again.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email"
        self.fields["username"].widget = forms.EmailInput(
            attrs={"autocomplete": "email", "inputmode": "email", "autofocus": True}
        )

    rate_limited: RateLimited | None = None

    def clean(self):
        if self.cleaned_data.get("username"):
            self.cleaned_data["username"] = self.cleaned_data["username"].strip().lower()
        if self.cleaned_data.get("username") and self.cleaned_data.get("password"):
            # Counted before the password is checked, so a refused attempt checks nothing.
            try:
                login_attempt_count(email=self.cleaned_data["username"], address=client_address(self.request))
            except RateLimited as exc:
                self.rate_limited = exc
                raise ValidationError(exc.message, code=exc.code) from None
        return super().clean()


class TwoFactorCodeForm(forms.Form):
    """The code from the authenticator app; the same field takes a recovery code."""

    code = forms.CharField(
        label="Code from your authenticator app", max_length=32, strip=True,
        widget=forms.TextInput(attrs={
            "autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True,
            "autocapitalize": "off", "spellcheck": "false", "class": "mono code-input",
        }),
    )


class RecoveryCodeForm(forms.Form):
    code = forms.CharField(
        label="Recovery code", max_length=32, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "off", "spellcheck": "false", "class": "mono"}),
    )

"""Member-side forms: joining a tier and managing a membership. They only parse what a person
sent; the services check the rules, so the pages say what the API says."""

from django import forms

from .services import MAX_PAUSE_PERIODS

JOIN_CHOICES = [("wallet", "Wallet"), ("card", "Card")]


class JoinForm(forms.Form):
    method = forms.ChoiceField(choices=JOIN_CHOICES, error_messages={
        "required": "Choose how to pay.", "invalid_choice": "Choose how to pay: wallet or card."})
    # Checked by the service: an interval the tier does not offer is refused with its own message.
    interval = forms.CharField(required=False, max_length=20)
    email = forms.EmailField(label="Your email", required=False, help_text="Receipts and the link to manage your membership go here.",
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    payment_method = forms.ChoiceField(label="Card to charge when the trial ends", required=False, choices=(),
                                       widget=forms.RadioSelect)
    next = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, cards=(), signed_in: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.signed_in = signed_in
        self.fields["payment_method"].choices = list(cards)

    def clean(self):
        data = super().clean()
        if data.get("method") == "card" and not self.signed_in and not data.get("email") and "email" not in self.errors:
            self.add_error("email", "Enter your email: your receipt and the link to manage your membership go there.")
        return data


class PayWithForm(forms.Form):
    pay_with = forms.ChoiceField(label="Pay renewals", choices=[("wallet", "From my wallet (no card fee)"), ("card", "By card")],
                                 widget=forms.RadioSelect, error_messages={"required": "Choose how to pay renewals."})
    payment_method = forms.ChoiceField(label="Card", required=False, choices=())
    card_fallback = forms.BooleanField(label="Charge the card when my wallet cannot pay a renewal", required=False)

    def __init__(self, *args, cards=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"].choices = [("", "Keep my saved card"), *cards]


class PauseForm(forms.Form):
    periods = forms.TypedChoiceField(
        label="Pause for", coerce=int, choices=[(n, f"{n} period{'s' if n > 1 else ''}") for n in range(1, MAX_PAUSE_PERIODS + 1)],
        error_messages={"invalid_choice": f"Pause for 1 to {MAX_PAUSE_PERIODS} periods.", "required": "Choose how long to pause."},
    )


class ChangeForm(forms.Form):
    tier = forms.CharField(max_length=40)
    interval = forms.CharField(required=False, max_length=20)

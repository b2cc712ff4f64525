"""The buyer's form on "Your usage billing": the card that pays their invoices."""

from django import forms
from django.utils.translation import gettext_lazy as _


class UsageCardForm(forms.Form):
    payment_method = forms.ChoiceField(label=_("Card"), required=False, choices=())
    wallet_first = forms.BooleanField(label=_("Pay from my wallet first, under the allowance I gave the store"),
                                      required=False)

    def __init__(self, *args, cards=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"].choices = [("", _("Keep my saved card")), *cards]

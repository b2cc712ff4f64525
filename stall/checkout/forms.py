from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from stall.catalog.models import PriceType
from stall.core.errors import StallError
from stall.core.money import amount_for_input, format_money, parse_amount


class BuyForm(forms.Form):
    email = forms.EmailField(label=_("Your email"), help_text=_("Your receipt and download link go here."),
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    amount = forms.CharField(label=_("Pay what you want"), required=False,
                             widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    # Unticked unless the buyer ticks it: consent is asked, never assumed.
    email_consent = forms.BooleanField(label=_("Email me news from this store"), required=False,
                                       help_text=_("You can unsubscribe from any email."))
    discount_code = forms.CharField(label=_("Discount code"), required=False, max_length=40,
                                    widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters",
                                                                  "spellcheck": "false"}))

    def __init__(self, *args, product, locale="en", **kwargs):
        super().__init__(*args, **kwargs)
        self.product = product
        self.locale = locale
        if product.price_type != PriceType.PAY_WHAT_YOU_WANT:
            del self.fields["amount"]
        else:
            minimum = format_money(product.amount, product.currency, locale)
            self.fields["amount"].required = True
            self.fields["amount"].label = gettext("Pay what you want (%(currency)s)") % {"currency": product.currency}
            self.fields["amount"].help_text = gettext("Minimum %(amount)s.") % {"amount": minimum} if product.amount else gettext("Enter 0 to get it free.")
            if product.suggested_amount is not None and not self.is_bound:
                self.initial["amount"] = amount_for_input(product.suggested_amount, product.currency, locale)

    def clean_amount(self):
        raw = self.cleaned_data.get("amount", "")
        try:
            return parse_amount(raw, self.product.currency, locale=self.locale)
        except StallError as exc:
            raise forms.ValidationError(gettext(str(exc.message))) from None


class PayForm(forms.Form):
    payment_method = forms.ChoiceField(widget=forms.RadioSelect, label=_("Test card"))

    def __init__(self, *args, methods, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"].choices = methods
        self.fields["payment_method"].initial = methods[0][0] if methods else None

"""The buyer's wallet and tab forms. Amounts are typed in the buyer's locale and parsed with
``parse_amount``; the services check limits and cards and their errors land on these fields."""

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from stall.checkout.forms import BuyForm
from stall.core.errors import StallError
from stall.core.money import format_money, parse_amount
from stall.payments.rails import rail_get, rail_livemode, sandbox_enabled
from stall.payments.selectors import lightning_config_for_store, stripe_config_for_store

_NOT_TEST = ("stripe", "lightning")


def card_choices(
    *, store=None, stripe: bool = False, real_only: bool = False, lightning: bool = False
) -> list[tuple[str, str]]:
    """The cards a buyer can pick on these pages: the sandbox's test cards where they are on for
    ``store`` (or for pages of no store), and with ``stripe`` "Card" (entered on Stripe's card page)
    when Stripe is set up for ``store`` (its own keys or the platform's). ``real_only`` leaves the
    test cards out where they would pay with test money (settling a tab: its purchases are real).
    With ``lightning``, "Lightning" where ``store`` has an LNbits wallet (a top-up paid by invoice)."""
    choices = []
    if sandbox_enabled(store_id=store.pk if store is not None else None):
        if not (real_only and not rail_livemode("sandbox")):
            choices = rail_get("sandbox").payment_methods()
    if stripe and stripe_config_for_store(store) is not None:
        choices = [*choices, ("stripe", _("Card"))]
    if lightning and lightning_config_for_store(store) is not None:
        choices = [*choices, ("lightning", "Lightning")]
    return choices


class CardField(forms.CharField):
    """A card: the sandbox test cards and "Card" on Stripe's page (radio buttons), or else a
    Stripe PaymentMethod ``pm_…`` where Stripe is set up, or nothing at all where no card is taken.

    Any text is accepted here; the payment services say whether the rail knows it.
    """

    def __init__(self, *, store=None, stripe: bool = False, real_only: bool = False, lightning: bool = False, **kwargs):
        choices = card_choices(store=store, stripe=stripe, real_only=real_only, lightning=lightning)
        # The page says "no real money moves" only next to test cards, and "test mode" when it
        # offers them where the Stall takes real money: what they pay for is then test money.
        self.sandbox = any(code not in _NOT_TEST for code, _label in choices)
        self.test_mode = self.sandbox and not rail_livemode("sandbox")
        # No test cards and no Stripe for this page: no card is taken here at all.
        self.unavailable = not choices and stripe_config_for_store(store) is None
        widget = forms.RadioSelect(choices=choices) if choices else forms.TextInput(attrs={"autocomplete": "off", "placeholder": "pm_…"})
        label = _("Card (a Stripe PaymentMethod, pm_…)")
        if choices:
            label = _("Test card") if all(code not in _NOT_TEST for code, _name in choices) else _("Pay with")
        kwargs.setdefault("label", label)
        kwargs.setdefault("error_messages", {"required": _("Choose a card.")})
        super().__init__(widget=widget, max_length=64, initial=choices[0][0] if choices else None, **kwargs)


class _AmountForm(forms.Form):
    def __init__(self, *args, currency: str, locale: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.locale = locale

    def _amount(self, name: str) -> int | None:
        raw = self.cleaned_data.get(name, "")
        if raw in (None, ""):
            return None
        try:
            return parse_amount(raw, self.currency, locale=self.locale, param=name)
        except StallError as exc:
            raise forms.ValidationError(gettext(str(exc.message))) from None


class TopUpForm(_AmountForm):
    """A preset button (``preset``, minor units) or a custom ``amount``, and a card."""

    preset = forms.CharField(required=False, max_length=20, widget=forms.HiddenInput)
    amount = forms.CharField(
        label=_("Another amount"), required=False, max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    def __init__(self, *args, presets: list[int], store=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Built per form: the sandbox may be turned off, and Stripe set up for one store only.
        self.fields["payment_method"] = CardField(store=store, stripe=True, lightning=True)
        self.presets = presets
        self.fields["amount"].label = gettext("Another amount (%(currency)s)") % {"currency": self.currency}

    def clean_amount(self):
        return self._amount("amount")

    def clean(self):
        data = super().clean()
        preset = data.get("preset")
        if preset:
            if not preset.isdigit() or int(preset) not in self.presets:
                self.add_error("amount", gettext("Choose one of the amounts shown, or type another."))
            else:
                data["amount"] = int(preset)
        elif data.get("amount") is None and "amount" not in self.errors:
            self.add_error("amount", gettext("Choose an amount or type one."))
        return data


class ConfirmAboveForm(_AmountForm):
    confirm_above = forms.CharField(
        label=_("Pay with one click up to"), max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text=_("Above this, we ask you to confirm before paying from your wallet or tab."),
        error_messages={"required": _("Enter an amount (0 to always confirm).")},
    )

    def clean_confirm_above(self):
        return self._amount("confirm_above")


class AutoTopUpForm(_AmountForm):
    below = forms.CharField(
        label=_("When my balance falls below"), max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": _("Enter the balance to top up at.")},
    )
    auto_amount = forms.CharField(
        label=_("Top up by"), max_length=40,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": _("Enter how much to add each time.")},
    )
    def __init__(self, *args, store=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"] = CardField(store=store)
        if card_choices(store=store):
            self.fields["payment_method"].label = _("Test card to save")

    def clean_below(self):
        below = self._amount("below")
        if below == 0:
            raise forms.ValidationError(gettext("Enter more than %(amount)s.") % {"amount": format_money(0, self.currency, self.locale)})
        return below

    def clean_auto_amount(self):
        return self._amount("auto_amount")


class CardForm(forms.Form):
    """Pick a card to settle a tab with (``store``: whose Stripe account would take "Card"). Test
    cards are offered only where they are not test money: a tab's purchases were real."""

    def __init__(self, *args, store=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_method"] = CardField(store=store, stripe=True, real_only=True)


class GiftCardBuyForm(BuyForm):
    """Buying a gift card: who pays (their receipt), who receives the code, what it says, when."""

    recipient_email = forms.EmailField(label=_("Recipient's email"), help_text=_("The gift card's code is sent here."),
                                       widget=forms.EmailInput(attrs={"inputmode": "email"}))
    recipient_name = forms.CharField(label=_("Recipient's name"), required=False, max_length=120)
    sender_name = forms.CharField(label=_("From"), required=False, max_length=120, help_text=_("Your name, as the recipient knows you."))
    message = forms.CharField(label=_("Message"), required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))
    send_on = forms.DateField(label=_("Send on"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                              help_text=_("Leave empty to send it now."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].label = _("Your email")
        self.fields["email"].help_text = _("Your receipt goes here.")
        if "amount" in self.fields:
            self.fields["amount"].label = gettext("Amount (%(currency)s)") % {"currency": self.product.currency}

    def clean_amount(self):
        amount = super().clean_amount()
        if amount is not None and amount <= 0:
            raise forms.ValidationError(gettext("Choose an amount above zero."))
        return amount


class GiftCardRedeemForm(forms.Form):
    code = forms.CharField(label=_("Gift card code"), max_length=64,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}))

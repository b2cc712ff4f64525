"""Forms of the creator's dashboard. They parse what a person typed; the services decide."""

from babel.core import UnknownLocaleError
from babel.numbers import get_decimal_symbol
from django import forms
from django.conf import settings

from stall.catalog.models import PriceType, ProductStatus
from stall.core.errors import StallError
from stall.core.money import Money, parse_amount

# Offered in the currency select; any ISO 4217 code works through the API.
CURRENCIES = [
    ("USD", "USD — US dollar"),
    ("EUR", "EUR — Euro"),
    ("GBP", "GBP — British pound"),
    ("CAD", "CAD — Canadian dollar"),
    ("AUD", "AUD — Australian dollar"),
    ("NZD", "NZD — New Zealand dollar"),
    ("CHF", "CHF — Swiss franc"),
    ("SEK", "SEK — Swedish krona"),
    ("NOK", "NOK — Norwegian krone"),
    ("DKK", "DKK — Danish krone"),
    ("PLN", "PLN — Polish złoty"),
    ("CZK", "CZK — Czech koruna"),
    ("JPY", "JPY — Japanese yen"),
    ("KRW", "KRW — South Korean won"),
    ("CNY", "CNY — Chinese yuan"),
    ("HKD", "HKD — Hong Kong dollar"),
    ("SGD", "SGD — Singapore dollar"),
    ("INR", "INR — Indian rupee"),
    ("IDR", "IDR — Indonesian rupiah"),
    ("BRL", "BRL — Brazilian real"),
    ("MXN", "MXN — Mexican peso"),
    ("ZAR", "ZAR — South African rand"),
    ("KWD", "KWD — Kuwaiti dinar"),
]


def amount_for_input(amount: int | None, currency: str, locale: str = "en") -> str:
    """Minor units as a person would type them back: 250 USD → "2.50", or "2,50" in pt-BR."""
    if amount is None:
        return ""
    text = str(Money(amount, currency).decimal)
    try:
        mark = get_decimal_symbol(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        mark = "."
    return text.replace(".", mark)


class AmountField(forms.CharField):
    """A text box for an amount, parsed with ``parse_amount`` into minor units of ``currency``.

    The form sets ``currency`` and ``locale`` (see ``_AmountsForm``); empty means None.
    """

    currency = "USD"
    locale = "en"

    def __init__(self, **kwargs):
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
        super().__init__(**kwargs)

    def clean(self, value):
        text = super().clean(value)
        if text in self.empty_values:
            return None
        try:
            return parse_amount(text, self.currency, locale=self.locale)
        except StallError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


class _AmountsForm(forms.Form):
    """A form whose AmountFields are in the store's currency, read in the viewer's locale."""

    def __init__(self, *args, currency: str, locale: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.locale = locale
        for field in self.fields.values():
            if isinstance(field, AmountField):
                field.currency, field.locale = currency, locale


class StoreCreateForm(forms.Form):
    name = forms.CharField(label="Store name", max_length=100)
    slug = forms.CharField(
        label="Address", max_length=50, required=False,
        help_text="Letters, numbers and hyphens, used in your store's link. Leave empty to make one from the name.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "autocomplete": "off", "spellcheck": "false"}),
    )
    currency = forms.ChoiceField(label="Currency", choices=CURRENCIES, initial="USD",
                                 help_text="Prices and payouts are in this currency. It cannot change once you add products.")
    bio = forms.CharField(label="About the store", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4}),
                          help_text="Markdown is fine.")


class StoreSettingsForm(forms.Form):
    name = forms.CharField(label="Store name", max_length=100)
    slug = forms.CharField(
        label="Address", max_length=50,
        help_text="Your store's link ends in /s/address/. Changing it breaks links you have shared.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "autocomplete": "off", "spellcheck": "false"}),
    )
    bio = forms.CharField(label="About the store", required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 6}),
                          help_text="Markdown: **bold**, *italic*, [links](https://example.com), lists.")
    avatar = forms.ImageField(label="Avatar", required=False, help_text="A square image works best.",
                              widget=forms.FileInput(attrs={"accept": "image/*"}))
    currency = forms.ChoiceField(label="Currency", choices=CURRENCIES)
    support_email = forms.EmailField(label="Support email", required=False,
                                     help_text="Shown on receipts so buyers can reach you.",
                                     widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    embed_origins = forms.CharField(
        label="Sites that may embed your checkout", required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "autocapitalize": "none", "spellcheck": "false",
                                     "placeholder": "https://example.com"}),
        help_text="One a line, like https://example.com. The buy button's overlay opens only on these sites; "
                  "the plain button link works everywhere.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.initial.get("currency")
        if current and current not in dict(CURRENCIES):
            # A store made through the API may use a currency the select does not list.
            self.fields["currency"].choices = [(current, current), *CURRENCIES]


class ProductForm(_AmountsForm):
    name = forms.CharField(label="Name", max_length=120)
    slug = forms.CharField(
        label="Address", max_length=80, required=False,
        help_text="Used in the product's link. Leave empty to make one from the name.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "autocomplete": "off", "spellcheck": "false"}),
    )
    description = forms.CharField(label="Description", required=False, max_length=20000,
                                  widget=forms.Textarea(attrs={"rows": 8}), help_text="Markdown is fine.")
    price_type = forms.ChoiceField(label="Pricing", choices=PriceType.choices, initial=PriceType.FIXED, widget=forms.RadioSelect)
    amount = AmountField(label="Price", help_text="For pay what you want, the minimum. 0 makes it free.")
    suggested_amount = AmountField(label="Suggested amount", required=False,
                                   help_text="Pay what you want only: the amount filled in for the buyer.")
    status = forms.ChoiceField(label="Status", choices=ProductStatus.choices, initial=ProductStatus.DRAFT,
                               help_text="Only published products are shown and sold. A download needs a file to be published.")
    cover = forms.ImageField(label="Cover image", required=False, widget=forms.FileInput(attrs={"accept": "image/*"}))
    download_limit = forms.IntegerField(label="Download limit", min_value=1, max_value=1000,
                                        initial=settings.STALL_DOWNLOAD_LIMIT,
                                        help_text="How many times a buyer may download each file.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Price ({self.currency})"
        self.fields["suggested_amount"].label = f"Suggested amount ({self.currency})"

    def clean(self):
        data = super().clean()
        if data.get("price_type") == PriceType.FIXED:
            # The box is shown for every pricing when JavaScript is off; it means nothing for a fixed price.
            data["suggested_amount"] = None
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"], "slug": data["slug"], "description": data["description"],
            "price_type": data["price_type"], "amount": data["amount"], "suggested_amount": data["suggested_amount"],
            "status": data.get("status"), "cover": data.get("cover") or None, "download_limit": data["download_limit"],
        }


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one ``<input type=file multiple>`` (the pattern in Django's docs)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)) and data:
            return [single(d, initial) for d in data]
        if isinstance(data, (list, tuple)):
            data = None  # nothing chosen: let FileField say "required"
        cleaned = single(data, initial)
        return [cleaned] if cleaned else []  # optional and left empty: no files


class ProductFilesForm(forms.Form):
    files = MultipleFileField(label="Add files", help_text="Choose one or more files; buyers download them after paying.",
                              error_messages={"required": "Choose at least one file to upload."})


class ProductCreateForm(ProductForm):
    """A new product with its files, in one post. No status select: the "Publish" and "Save as
    draft" buttons say which (``action``); the catalog refuses to publish a download with no files."""

    files = MultipleFileField(
        label="Files", required=False,
        help_text="What buyers download after paying. Choose one or more; you can add more later.",
    )
    field_order = ["name", "price_type", "amount", "suggested_amount", "files", "description", "cover", "slug",
                   "download_limit"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["status"]

    def service_kwargs(self) -> dict:
        kwargs = super().service_kwargs()
        kwargs["status"] = ProductStatus.PUBLISHED if self.data.get("action") == "publish" else ProductStatus.DRAFT
        kwargs["files"] = self.cleaned_data["files"]
        return kwargs


class OrderSearchForm(forms.Form):
    q = forms.CharField(label="Search orders", required=False, max_length=254,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Email or order id"}))
    before = forms.CharField(required=False, max_length=40)


class RefundForm(_AmountsForm):
    line = forms.TypedChoiceField(label="What", required=False, coerce=int, empty_value=None,
                                  help_text="One line alone: up to what was paid for it; in full, it loses its downloads.")
    amount = AmountField(label="Amount", required=False, help_text="Leave empty to refund everything still refundable.")

    def __init__(self, *args, lines=(), **kwargs):
        super().__init__(*args, **kwargs)
        if len(lines) > 1:
            self.fields["line"].choices = [("", "The whole order")] + [(ln.pk, ln.name) for ln in lines]
        else:
            del self.fields["line"]
    reason = forms.CharField(label="Reason", required=False, max_length=255,
                             help_text="Optional: why you are refunding.")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, required=False,
                           help_text="What the key is for, e.g. “my website”.")

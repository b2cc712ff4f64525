"""Forms of the books pages. Amounts are typed as written ("12.50") and parsed in the store's
currency; the services check the rules (shares ≤ 100%, a known category) and their errors go
next to the field they name."""

from django import forms

EXPENSE_CSV_HELP = "Columns: date (YYYY-MM-DD), amount, category, and optionally currency, vendor, note."


class SplitForm(forms.Form):
    tax_rate = forms.DecimalField(label="Tax reserve (% of each sale's net)", min_value=0, max_value=100, decimal_places=2,
                                  help_text="Moved into the tax reserve as each sale is paid, e.g. 25.")
    country = forms.CharField(label="Country", max_length=2, initial="US",
                              help_text="US: Form 1040-ES periods and the safe harbour. Elsewhere: a quarterly summary.")
    last_year_tax = forms.CharField(label="Last year's total tax", required=False,
                                    help_text="Optional. For the safe-harbour figure.")
    last_year_agi = forms.CharField(label="Last year's adjusted gross income", required=False,
                                    help_text="Optional. Above $150,000 the safe harbour is 110% of last year's tax.")
    tax_reminders = forms.BooleanField(label="Email me a week before each due date", required=False)


class EnvelopeForm(forms.Form):
    name = forms.CharField(label="Envelope", max_length=60, help_text="e.g. Owner pay, Operating expenses, Emergency fund")
    share = forms.DecimalField(label="Share (% of each sale's net)", min_value=0, max_value=100, decimal_places=2)


class ExpenseForm(forms.Form):
    date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    amount = forms.CharField(label="Amount", widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}))
    category = forms.ChoiceField(label="Category")
    vendor = forms.CharField(label="Vendor", max_length=120, required=False)
    note = forms.CharField(label="Note", max_length=500, required=False)
    receipt = forms.FileField(label="Receipt", required=False, help_text="An image or a PDF, up to 10 MB.",
                              widget=forms.ClearableFileInput(attrs={"accept": "image/*,application/pdf"}))
    monthly = forms.BooleanField(label="Repeats every month", required=False,
                                 help_text="A subscription: recorded again on the same day each month.")

    def __init__(self, *args, categories: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "Choose…"), *categories.items()]


class CategoryForm(forms.Form):
    name = forms.CharField(label="New category", max_length=80)


class ExpenseImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text=EXPENSE_CSV_HELP)


class TaxPaymentForm(forms.Form):
    year = forms.IntegerField(label="Tax year", min_value=2000, max_value=2100)
    quarter = forms.TypedChoiceField(label="Period", coerce=int, choices=[(1, "Q1"), (2, "Q2"), (3, "Q3"), (4, "Q4")])
    amount = forms.CharField(label="Amount paid")
    paid_on = forms.DateField(label="Paid on", widget=forms.DateInput(attrs={"type": "date"}))
    note = forms.CharField(label="Note", max_length=200, required=False)

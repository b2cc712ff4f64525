"""Forms of commissions: the buyer's brief at checkout, messages, the delivery, the decline."""

from django import forms
from django.utils.translation import gettext_lazy as _


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one ``<input type=file multiple>``, none required."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(d, initial) for d in data if d]
        return [super().clean(data, initial)] if data else []


class BriefForm(forms.Form):
    brief = forms.CharField(label=_("Your brief"), max_length=10000, widget=forms.Textarea(attrs={"rows": 6}),
                            help_text=_("What you would like made: subject, size, style, deadline."))
    brief_files = MultipleFileField(label=_("Reference files"), help_text=_("Optional: sketches, photos, examples."))


class MessageForm(forms.Form):
    body = forms.CharField(label=_("Message"), max_length=5000, widget=forms.Textarea(attrs={"rows": 3}))


class DeliverForm(forms.Form):
    note = forms.CharField(label="Note to the buyer", required=False, max_length=10000, widget=forms.Textarea(attrs={"rows": 4}))
    files = MultipleFileField(label="Files", help_text="The finished work.")


class DeclineForm(forms.Form):
    reason = forms.CharField(label="Reason (sent to the buyer)", required=False, max_length=500)


class OfferForm(forms.Form):
    slots = forms.IntegerField(label="Open slots", required=False, min_value=1, max_value=1000,
                               help_text="How many commissions you take at once. Empty: no limit.")
    auto_accept_days = forms.IntegerField(label="Days for the buyer to accept", min_value=1, max_value=60, initial=7,
                                          help_text="After a delivery, it is accepted for the buyer after this many days "
                                                    "and the payment reaches your balance.")

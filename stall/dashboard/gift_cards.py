"""Dashboard pages for gift cards: the store's cards and what they still owe (the outstanding
liability), issuing a card by hand, putting gift cards on sale, a card's history, cancelling one.
Thin views over stall.wallets.gift_cards; another store's card is a 404."""

from datetime import UTC, datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from stall.catalog.models import PriceType, ProductKind, ProductStatus
from stall.catalog.services import product_create
from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import format_money
from stall.wallets import gift_cards as cards

from .forms import AmountField, _AmountsForm
from .views import _locale, _render, _store

CARDS_PER_PAGE = 50


class GiftCardIssueForm(_AmountsForm):
    amount = AmountField(label="Amount")
    recipient_email = forms.EmailField(label="Recipient's email", required=False,
                                       help_text="Emailed the code now. Leave empty to hand the code out yourself.")
    recipient_name = forms.CharField(label="Recipient's name", required=False, max_length=120)
    message = forms.CharField(label="Message", required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}))
    expires_on = forms.DateField(label="Expires on", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                 help_text="Optional. Redeemable until the end of that day (UTC).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Amount ({self.currency})"


class GiftCardProductForm(_AmountsForm):
    name = forms.CharField(label="Name", max_length=120, initial="Gift card")
    amount = AmountField(label="Price", help_text="The card's value. With “buyer chooses” on, the smallest value they may choose.")
    buyer_chooses = forms.BooleanField(label="Buyer chooses the amount", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Value ({self.currency})"

    def clean_amount(self):
        amount = self.cleaned_data.get("amount")
        if not amount or amount <= 0:
            raise forms.ValidationError("A gift card is worth more than 0.")
        return amount


@login_required
@require_http_methods(["GET", "POST"])
def gift_cards(request, slug):
    store = _store(request, slug)
    locale = _locale(request)
    action = request.POST.get("action") if request.method == "POST" else None
    issue_form = GiftCardIssueForm(request.POST if action == "issue" else None, currency=store.currency, locale=locale)
    sell_form = GiftCardProductForm(request.POST if action == "sell" else None, currency=store.currency, locale=locale,
                                    prefix="sell")
    if action == "issue" and issue_form.is_valid():
        data = issue_form.cleaned_data
        expires_at = datetime.combine(data["expires_on"], time.max, tzinfo=UTC) if data.get("expires_on") else None
        try:
            card, code = cards.gift_card_issue(
                store=store, amount=data["amount"], recipient_email=data["recipient_email"],
                recipient_name=data["recipient_name"], message=data["message"], expires_at=expires_at,
                sender_name=store.name,
            )
        except StallError as exc:
            form_add_stall_error(issue_form, exc)
        else:
            sent = f" and emailed to {card.recipient_email}" if card.recipient_email else ""
            messages.success(request, f"Gift card of {format_money(card.initial_amount, card.currency)} issued{sent}. "
                                      f"Its code, shown this once: {code}")
            return redirect("dashboard:gift_cards", slug=store.slug)
    if action == "sell" and sell_form.is_valid():
        data = sell_form.cleaned_data
        try:
            product = product_create(
                store=store, name=data["name"], amount=data["amount"], kind=ProductKind.GIFT_CARD,
                price_type=PriceType.PAY_WHAT_YOU_WANT if data["buyer_chooses"] else PriceType.FIXED,
                status=ProductStatus.PUBLISHED,
            )
        except StallError as exc:
            form_add_stall_error(sell_form, exc)
        else:
            messages.success(request, f"{product.name} is on sale on your store page.")
            return redirect("dashboard:gift_cards", slug=store.slug)
    before = request.GET.get("before", "")
    found = cards.gift_cards_for_store(store=store)
    if before:
        found = found.filter(pk__lt=before)
    page = list(found[: CARDS_PER_PAGE + 1])
    older = page[CARDS_PER_PAGE - 1].pk if len(page) > CARDS_PER_PAGE else None
    products = store.products.filter(kind=ProductKind.GIFT_CARD).order_by("-pk")
    context = {
        "store": store, "section": "gift_cards", "cards": page[:CARDS_PER_PAGE], "older": older, "before": before,
        "totals": cards.gift_card_totals(store=store), "issue_form": issue_form, "sell_form": sell_form,
        "products": products,
    }
    failed = issue_form if issue_form.is_bound else sell_form
    return _render(request, "dashboard/gift_cards.html", context, failed)


@login_required
def gift_card(request, slug, card_id):
    store = _store(request, slug)
    try:
        card = cards.gift_card_get(store=store, card_id=card_id)
    except StallError:
        raise Http404 from None
    context = {"store": store, "section": "gift_cards", "card": card, "events": card.events.all()}
    return _render(request, "dashboard/gift_card.html", context)


@login_required
@require_POST
def gift_card_void(request, slug, card_id):
    store = _store(request, slug)
    try:
        card = cards.gift_card_void(store=store, card_id=card_id)
    except cards.GiftCardNotFound:
        raise Http404 from None
    except StallError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Gift card {card.code_hint} cancelled; its value is back in your balance.")
    return redirect("dashboard:gift_card", slug=store.slug, card_id=card_id)

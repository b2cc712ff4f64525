"""The buyer's page "Your usage billing": each usage subscription of the signed-in buyer (in
every store where their email is a customer), what this period has cost so far, its invoices
with their lines, and — billed in arrears — the card that pays them and whether the wallet pays
first. Thin views: parse a form, call one service, render or redirect. Work without JavaScript.

Cards are chosen here where the store's sandbox is on (test cards); a Stripe card is saved by
the creator's integration through the API (``POST /api/v1/usage_subscriptions/{id}/payment_method``
with a ``pm_…`` made by Stripe.js), or is the card the buyer gave a membership tier carrying the
plan. A subscription of another email is "not found" (404).
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.core.dates import date_format
from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.payments.rails import rail_get, sandbox_enabled

from . import selectors, services
from .forms import UsageCardForm
from .models import BillingMode, InvoiceStatus, LineKind, UsageSubscriptionStatus
from .rating import round_half_up


def _cards(store) -> list[tuple[str, str]]:
    return rail_get("sandbox").payment_methods() if sandbox_enabled(store_id=store.pk) else []


def _status(status: str) -> str:
    return {
        UsageSubscriptionStatus.ACTIVE: _("Active"),
        UsageSubscriptionStatus.PAST_DUE: _("Past due"),
        UsageSubscriptionStatus.CANCELED: _("Canceled"),
    }[status]


def _invoice_status(status: str) -> str:
    return {
        InvoiceStatus.CHARGING: _("Charging your card"),
        InvoiceStatus.PAID: _("Paid"),
        InvoiceStatus.FAILED: _("Not paid yet"),
        InvoiceStatus.EMPTY: _("Nothing to pay"),
        InvoiceStatus.CARRIED: _("Added to the next invoice"),
    }[status]


def line_label(line) -> str:
    """An invoice line as the buyer reads it: the creator's name for it, or what it is."""
    if line.kind == LineKind.ADJUSTMENT:
        return _("%(meter)s: adjustment for %(period)s") % {"meter": line.description, "period": date_format(line.adjusts_period)}
    if line.kind == LineKind.CARRIED:
        return _("Carried from the invoice of %(period)s") % {"period": date_format(line.adjusts_period)}
    return line.description


def _page(request, buyer, *, errors=None, forms=None, status=200):
    rows = []
    for sub in selectors.usage_subscriptions_for_email(email=buyer.email):
        cards = _cards(sub.store)
        usage = selectors.customer_usage_get(store=sub.store, customer_id=sub.customer_id) if sub.status != "canceled" else None
        rows.append({
            "sub": sub, "status": _status(sub.status), "arrears": sub.billing == BillingMode.ARREARS,
            "so_far": round_half_up(usage.total) if usage is not None else None,
            "invoices": [(inv, _invoice_status(inv.status), [(line_label(ln), ln) for ln in inv.lines.all()])
                         for inv in selectors.invoices_for_subscription(subscription=sub)[:12]],
            "cards": cards, "error": (errors or {}).get(sub.pk),
            "form": (forms or {}).get(sub.pk) or UsageCardForm(cards=cards, auto_id=f"{sub.pk}_%s",
                                                               initial={"wallet_first": sub.wallet_first}),
        })
    return render(request, "metering/usage.html", {"buyer": buyer, "rows": rows}, status=status)


def usage_billing(request):
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    return _page(request, buyer)


@require_POST
def usage_card(request, subscription_id):
    """Save the card (a test card where the sandbox is on) and the wallet-first choice; a past-due
    invoice is tried again at once."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(reverse("metering:usage")))
    sub = selectors.usage_subscriptions_for_email(email=buyer.email).filter(pk=subscription_id).first()
    if sub is None:
        raise Http404
    form = UsageCardForm(request.POST, cards=_cards(sub.store), auto_id=f"{sub.pk}_%s")
    try:
        if not form.is_valid():
            raise StallError(next(iter(form.errors.values()))[0])
        sub = services.usage_subscription_card_set(subscription=sub, payment_method=form.cleaned_data["payment_method"] or None,
                                                   wallet_first=form.cleaned_data["wallet_first"])
    except StallError as error:
        form_add_stall_error(form, error)
        return _page(request, buyer, errors={sub.pk: error}, forms={sub.pk: form},
                     status=error.status if error.status >= 400 else 400)
    if sub.status == UsageSubscriptionStatus.PAST_DUE:
        messages.error(request, _("Saved, but the invoice could not be paid yet: %(reason)s") % {"reason": _(sub.failure_message)})
    else:
        messages.success(request, _("Saved: your usage invoices are paid this way."))
    return redirect(reverse("metering:usage") + f"#{sub.pk}")

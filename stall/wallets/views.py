"""The buyer's wallet and tab pages, and paying a checkout from them.

A buyer signs in by magic link (the library's form); these pages show only the signed-in buyer's
own wallet and tab. Views parse, call one service, and render or redirect.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db.models import F
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from stall.accounts.services import buyer_from_request, sign_in_url
from stall.checkout.models import CheckoutStatus
from stall.checkout.selectors import checkout_get
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import amount_for_input, currency_normalize, format_money
from stall.orders.checkout_pay import checkout_confirm
from stall.payments.lightning_services import (
    lightning_invoice_page,
    lightning_payment_cancel,
    lightning_payment_refresh,
)
from stall.payments.models import Payment, PaymentPurpose, PaymentStatus
from stall.payments.rails import card_minimum_charge
from stall.payments.selectors import stripe_config_for_store, stripe_csp
from stall.payments.services import payment_authenticate
from stall.payments.stripe_services import stripe_payment_refresh
from stall.stores.models import Store

from . import services
from .forms import AutoTopUpForm, CardForm, ConfirmAboveForm, TopUpForm
from .models import Tab, TabStatus, Wallet
from .selectors import (
    pay_options_for,
    tab_is_overdue,
    tab_open_get,
    tab_owed,
    tab_purchases,
    tabs_settled,
    wallet_for,
    wallet_movements,
    wallets_for_buyer,
)


def _locale(request) -> str:
    return getattr(request, "LANGUAGE_CODE", None) or "en"


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    return target if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None) else ""


def _store_from(request) -> Store | None:
    slug = request.POST.get("store") or request.GET.get("store")
    return Store.objects.filter(slug=slug).first() if slug else None


def _currency_from(request, buyer, store, *, tab: bool = False) -> str:
    """The wallet (or, with ``tab``, the tab) to show: ?currency=, else the store's currency, else
    the currency of the buyer's open tab (the tab page), else of the wallet that holds the most
    (one holding money before an empty one), else the operator's default."""
    raw = request.POST.get("currency") or request.GET.get("currency")
    if raw:
        try:
            return currency_normalize(raw)
        except StallError:
            raise Http404 from None
    if store is not None:
        return store.currency
    if tab:
        open_tab = Tab.objects.filter(buyer=buyer, status=TabStatus.OPEN).order_by("-opened_at").first()
        if open_tab is not None:
            return open_tab.currency
    held = (
        Wallet.objects.filter(buyer=buyer)
        .annotate(held=F("account__credits_posted") - F("account__debits_posted") - F("account__debits_pending"))
        .order_by("-held", "currency").values_list("currency", flat=True).first()
    )
    return held or settings.STALL_WALLET_DEFAULT_CURRENCY


def _here(path: str, currency: str, store: Store | None, next_path: str = "") -> str:
    query = {"currency": currency}
    if store is not None:
        query["store"] = store.slug
    if next_path:
        query["next"] = next_path
    return f"{path}?{urlencode(query)}"


@require_http_methods(["GET", "POST"])
def wallet_page(request):
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    store = _store_from(request)
    currency = _currency_from(request, buyer, store)
    wallet = wallet_for(buyer=buyer, currency=currency)
    locale, next_path = _locale(request), _safe_next(request)
    presets = services.top_up_presets(currency)
    action = request.POST.get("action") if request.method == "POST" else None
    data = request.POST if request.method == "POST" else None
    top_up_form = TopUpForm(
        data if action == "top_up" else None, currency=currency, locale=locale, presets=presets, store=store
    )
    confirm_form = ConfirmAboveForm(
        data if action == "confirm_above" else None, currency=currency, locale=locale,
        initial={"confirm_above": _for_input(wallet.confirm_above, currency, locale)},
    )
    auto_form = AutoTopUpForm(
        data if action == "auto_top_up" else None, currency=currency, locale=locale, store=store,
        auto_id="auto_%s",  # its card choice must not share the top-up form's element ids
        initial={
            "below": _for_input(wallet.auto_top_up_below, currency, locale),
            "auto_amount": _for_input(wallet.auto_top_up_amount or (presets[0] if presets else None), currency, locale),
        },
    )
    here = _here(reverse("wallets:wallet"), currency, store, next_path)
    if action == "top_up" and top_up_form.is_valid():
        try:
            payment = services.wallet_top_up(
                buyer=buyer, amount=top_up_form.cleaned_data["amount"], currency=currency,
                payment_method=top_up_form.cleaned_data["payment_method"], store=store,
            )
        except StallError as exc:
            form_add_stall_error(top_up_form, exc)
        else:
            if payment.status == PaymentStatus.REQUIRES_ACTION:
                return redirect(_action_url(payment, next_path=next_path or here))
            messages.success(request, _("Added %(amount)s to your wallet.") % {"amount": format_money(payment.amount, currency, locale)})
            return redirect(next_path or here)
    elif action == "confirm_above" and confirm_form.is_valid():
        try:
            services.wallet_confirm_above_set(wallet=wallet, amount=confirm_form.cleaned_data["confirm_above"])
        except StallError as exc:
            form_add_stall_error(confirm_form, exc)
        else:
            messages.success(request, _("Saved."))
            return redirect(here)
    elif action == "auto_top_up" and auto_form.is_valid():
        try:
            services.wallet_auto_top_up_set(
                wallet=wallet, payment_method=auto_form.cleaned_data["payment_method"],
                below=auto_form.cleaned_data["below"], amount=auto_form.cleaned_data["auto_amount"], store=store,
            )
        except StallError as exc:
            form_add_stall_error(auto_form, exc)
        else:
            messages.success(request, _("Automatic top-up is on."))
            return redirect(here)
    elif action == "auto_top_up_off":
        services.wallet_auto_top_up_off(wallet=wallet)
        messages.success(request, _("Automatic top-up is off."))
        return redirect(here)
    elif request.method == "POST" and action not in ("top_up", "confirm_above", "auto_top_up"):
        messages.error(request, _("That form is not known here. Try again."))
        return redirect(here)

    wallet.account.refresh_from_db()
    movements, more = wallet_movements(wallet=wallet, before=request.GET.get("before"))
    context = {
        "wallet": wallet, "wallets": wallets_for_buyer(buyer=buyer), "currency": currency, "store": store,
        "next": next_path, "presets": presets, "top_up_form": top_up_form, "confirm_form": confirm_form,
        "auto_form": auto_form, "movements": movements, "more": more, "buyer": buyer,
        "limits": services.top_up_limits(currency), "tab": tab_open_get(buyer=buyer, currency=currency),
    }
    bound = [f for f in (top_up_form, confirm_form, auto_form) if f.is_bound]
    return render(request, "wallets/wallet.html", context, status=400 if bound and bound[0].errors else 200)


def _for_input(amount, currency, locale) -> str:
    return amount_for_input(amount, currency, locale) if amount is not None else ""


def _action_url(payment, *, next_path: str = "", checkout_id: str = "") -> str:
    """Where the buyer finishes a payment that waits for them: Stripe's card page, the Lightning
    invoice, or the sandbox bank's page."""
    query = {k: v for k, v in (("next", next_path), ("checkout", checkout_id)) if v}
    page = {"stripe": "wallets:card", "lightning": "wallets:lightning"}.get(payment.rail, "wallets:authenticate")
    url = reverse(page, args=[payment.pk])
    return f"{url}?{urlencode(query)}" if query else url


@require_http_methods(["GET", "POST"])
def tab_page(request):
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    store = _store_from(request)
    currency = _currency_from(request, buyer, store, tab=True)
    form = CardForm(request.POST or None, store=store)
    here = _here(reverse("wallets:tab"), currency, store)
    if request.method == "POST" and form.is_valid():
        try:
            payment = services.tab_settle(
                buyer=buyer, currency=currency, payment_method=form.cleaned_data["payment_method"], store=store
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            if payment.status == PaymentStatus.REQUIRES_ACTION:
                return redirect(_action_url(payment, next_path=here))
            messages.success(request, _("Your tab is settled: %(amount)s paid.") % {"amount": format_money(payment.amount, currency, _locale(request))})
            return redirect(here)
    tab = tab_open_get(buyer=buyer, currency=currency)
    context = {"form": form, "currency": currency, "store": store, "tab": tab, "settled": tabs_settled(buyer=buyer, currency=currency)}
    if tab is not None:
        context.update(
            owed=tab_owed(tab=tab), purchases=tab_purchases(tab=tab), settle_by=services.tab_settle_by(tab),
            overdue=tab_is_overdue(tab), minimum=_card_minimum(currency),
        )
    return render(request, "wallets/tab.html", context, status=400 if form.errors else 200)


def _card_minimum(currency: str) -> int:
    return card_minimum_charge(currency)


def _checkout_or_404(checkout_id):
    try:
        return checkout_get(checkout_id=checkout_id)
    except NotFound:
        raise Http404 from None


@require_POST
def checkout_pay(request, checkout_id):
    """Pay a checkout from the wallet or put it on the tab: one click, or two above confirm_above."""
    checkout = _checkout_or_404(checkout_id)
    pay_url = reverse("checkout:pay", args=[checkout.pk])
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(pay_url))
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    method = request.POST.get("payment_method")
    if method not in ("wallet", "tab"):
        messages.error(request, _("Choose your wallet or your tab."))
        return redirect(pay_url)
    options = pay_options_for(buyer=buyer, checkout=checkout)
    if options.wallet_needs_confirm and request.POST.get("confirm") != "yes":
        return render(request, "wallets/pay_confirm.html", {
            "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(), "method": method, "options": options,
        })
    priced = checkout.amount_total
    try:
        checkout = checkout_confirm(checkout_id=checkout.pk, payment_method=method, buyer=buyer, checkout=checkout)
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect(pay_url)
    if checkout.status != CheckoutStatus.COMPLETE:
        # Another payment (a card awaiting 3-D Secure) is under way for this checkout.
        messages.error(request, _("A card payment for this checkout is waiting for your bank. Finish or cancel it first."))
        return redirect(pay_url)
    if checkout.amount_total < priced:
        # Lowered at payment: a membership's cap was reached since the checkout was priced
        # (orders.checkout_pay.checkout_confirm). Say why the amount is not the one shown.
        if checkout.amount_total == 0:
            messages.info(request, _("You reached this month's cap for these posts, so this one is yours at no charge."))
        else:
            messages.info(request, _("You reached this month's cap for these posts: you paid only %(amount)s, what was left under it.") % {
                "amount": format_money(checkout.amount_total, checkout.currency)})
    return redirect("checkout:complete", checkout_id=checkout.pk)


@require_http_methods(["GET", "POST"])
def settle_and_buy(request, checkout_id):
    """A purchase the tab cannot take: settle the tab and pay for it with one card charge."""
    checkout = _checkout_or_404(checkout_id)
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    if checkout.status == CheckoutStatus.COMPLETE:
        return redirect("checkout:complete", checkout_id=checkout.pk)
    tab = tab_open_get(buyer=buyer, currency=checkout.currency)
    if tab is None:
        messages.error(request, _("You have no open tab to settle."))
        return redirect("checkout:pay", checkout_id=checkout.pk)
    owed = tab_owed(tab=tab)
    charge = max(owed + checkout.amount_total, _card_minimum(checkout.currency))
    form = CardForm(request.POST or None, store=checkout.store)
    if request.method == "POST" and form.is_valid():
        try:
            payment, checkout = services.tab_settle_and_buy(
                buyer=buyer, checkout_id=checkout.pk, payment_method=form.cleaned_data["payment_method"]
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            if payment.status == PaymentStatus.REQUIRES_ACTION:
                return redirect(_action_url(payment, checkout_id=checkout.pk))
            return redirect("checkout:complete", checkout_id=checkout.pk)
    context = {
        "checkout": checkout, "store": checkout.store, "lines": checkout.lines.all(), "form": form, "tab": tab,
        "owed": owed, "charge": charge, "left_over": charge - owed - checkout.amount_total,
        "overdue": tab_is_overdue(tab),
    }
    return render(request, "wallets/settle_and_buy.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def authenticate(request, payment_id):
    """The sandbox bank's 3-D Secure page for a top-up or a tab settlement (checkouts have their own)."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    payment = Payment.objects.filter(
        pk=payment_id, buyer=buyer, purpose__in=[PaymentPurpose.TOP_UP, PaymentPurpose.TAB_SETTLEMENT]
    ).first()
    if payment is None:
        raise Http404
    checkout_id = request.GET.get("checkout", "")
    back = _safe_next(request) or (
        reverse("wallets:tab") if payment.purpose == PaymentPurpose.TAB_SETTLEMENT else reverse("wallets:wallet")
    ) + f"?currency={payment.currency}"
    if checkout_id:
        back = reverse("checkout:pay", args=[checkout_id])
    if payment.status == PaymentStatus.SUCCEEDED:
        return redirect(back)
    if payment.status != PaymentStatus.REQUIRES_ACTION or payment.rail != "sandbox":
        messages.error(request, _("This payment is not waiting for your confirmation."))
        return redirect(back)
    if request.method == "POST":
        locale = _locale(request)
        try:
            payment = payment_authenticate(payment_id=payment.pk, approve=request.POST.get("decision") == "approve")
        except StallError as exc:
            messages.error(request, _(str(exc.message)))
            return redirect(back)
        if checkout_id:
            try:
                checkout = services.checkout_pay_after_settlement(buyer=buyer, checkout_id=checkout_id)
            except StallError as exc:
                messages.error(request, _("Your tab is settled and the rest is in your wallet, but the purchase did not go through: %(reason)s") % {"reason": _(str(exc.message))})
                return redirect(back)
            return redirect("checkout:complete", checkout_id=checkout.pk)
        messages.success(request, _paid_message(payment, locale))
        return redirect(back)
    return render(request, "wallets/authenticate.html", {"payment": payment, "top_up": payment.purpose == PaymentPurpose.TOP_UP})


def _buyer_card_payment(buyer, payment_id) -> Payment:
    """The signed-in buyer's own Stripe top-up or tab settlement; 404 for anything else."""
    payment = Payment.objects.select_related("store").filter(
        pk=payment_id, buyer=buyer, rail="stripe", purpose__in=[PaymentPurpose.TOP_UP, PaymentPurpose.TAB_SETTLEMENT]
    ).first()
    if payment is None:
        raise Http404
    return payment


_CARD_BACK = "wallets_card_back"  # session: payment id -> [page to go back to, checkout to buy]


def _card_back(request, payment) -> tuple[str, str]:
    """Where the buyer goes once the card is paid: what the card page was given (``next``, and
    ``checkout`` for settle-and-buy), kept in the session because Stripe's return URL has no query."""
    kept = request.session.get(_CARD_BACK, {})
    next_path, checkout_id = _safe_next(request), request.GET.get("checkout", "")
    if next_path or checkout_id:
        kept = {**kept, payment.pk: [next_path, checkout_id]}
        request.session[_CARD_BACK] = kept
    next_path, checkout_id = kept.get(payment.pk, ["", ""])
    if checkout_id:
        return reverse("checkout:pay", args=[checkout_id]), checkout_id
    page = "wallets:tab" if payment.purpose == PaymentPurpose.TAB_SETTLEMENT else "wallets:wallet"
    return next_path or _here(reverse(page), payment.currency, payment.store), ""


@require_GET
def card_page(request, payment_id):
    """Stripe's Payment Element for a top-up or a tab settlement the buyer chose to pay by card."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    payment = _buyer_card_payment(buyer, payment_id)
    back, _checkout = _card_back(request, payment)
    try:
        payment, client_secret = services.card_payment_ready(payment_id=payment.pk)
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect(back)
    if not client_secret:  # paid, declined or being checked: the return page says which
        return redirect("wallets:card_return", payment_id=payment.pk)
    config = stripe_config_for_store(payment.store)
    context = {
        "payment": payment, "back": back, "client_secret": client_secret, "publishable_key": config.publishable_key,
        "stripe_js_url": settings.STRIPE_JS_URL, "next_action": payment.payment_method.startswith("pm_"),
        "return_url": request.build_absolute_uri(reverse("wallets:card_return", args=[payment.pk])),
        "what": _("Top up your wallet") if payment.purpose == PaymentPurpose.TOP_UP else _("Settle your tab"),
    }
    request.csp_extra = stripe_csp(config)
    return render(request, "wallets/card.html", context)


@require_GET
def card_return(request, payment_id):
    """Stripe sends the buyer back here: ask Stripe how the card went, then back to the wallet or
    tab with the outcome (for settle-and-buy, on to the paid checkout)."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    payment = _buyer_card_payment(buyer, payment_id)
    back, checkout_id = _card_back(request, payment)
    try:
        payment = stripe_payment_refresh(payment_id=payment.pk)
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect(back)
    if payment.status == PaymentStatus.REQUIRES_ACTION:  # back without paying: the card page again
        return redirect("wallets:card", payment_id=payment.pk)
    if payment.status == PaymentStatus.PROCESSING:
        messages.info(request, _("Your card payment is being checked with the card processor. It shows here once it is through."))
        return redirect(back)
    if payment.status != PaymentStatus.SUCCEEDED:
        messages.error(request, _(payment.failure_message or "The payment did not go through."))
        return redirect(back)
    if checkout_id:
        checkout = _checkout_or_404(checkout_id)
        if checkout.status != CheckoutStatus.COMPLETE:
            try:
                checkout = services.checkout_pay_after_settlement(buyer=buyer, checkout_id=checkout.pk)
            except StallError as exc:
                messages.error(request, _("Your tab is settled and the rest is in your wallet, but the purchase did not go through: %(reason)s") % {"reason": _(str(exc.message))})
                return redirect(back)
        return redirect("checkout:complete", checkout_id=checkout.pk)
    messages.success(request, _paid_message(payment, _locale(request)))
    return redirect(back)


def _paid_message(payment, locale: str) -> str:
    amount = format_money(payment.amount, payment.currency, locale)
    if payment.purpose == PaymentPurpose.TOP_UP:
        return _("Added %(amount)s to your wallet.") % {"amount": amount}
    return _("Your tab is settled: %(amount)s paid.") % {"amount": amount}


@require_http_methods(["GET", "POST"])
def lightning_top_up(request, payment_id):
    """The Lightning invoice of the signed-in buyer's top-up. POST ``check`` asks LNbits whether it
    was paid (works without script), ``cancel`` gives it up; once paid, back to the wallet."""
    buyer = buyer_from_request(request)
    if buyer is None:
        return redirect(sign_in_url(request.get_full_path()))
    payment = Payment.objects.select_related("store").filter(
        pk=payment_id, buyer=buyer, rail="lightning", purpose=PaymentPurpose.TOP_UP
    ).first()
    if payment is None:
        raise Http404
    back = _safe_next(request) or _here(reverse("wallets:wallet"), payment.currency, payment.store)
    action = request.POST.get("action") if request.method == "POST" else None
    try:
        if action == "cancel":
            payment = lightning_payment_cancel(payment_id=payment.pk)
        elif action == "check":
            payment = lightning_payment_refresh(payment_id=payment.pk)
    except StallError as exc:
        messages.error(request, _(str(exc.message)))
        return redirect(back)
    if payment.status == PaymentStatus.SUCCEEDED:
        # The page's script comes here (done_url) once paid, as the button does.
        messages.success(request, _paid_message(payment, _locale(request)))
        return redirect(back)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        if payment.status == PaymentStatus.FAILED:
            messages.error(request, _(payment.failure_message))
        return redirect(back)
    here = request.get_full_path()
    if request.method == "POST":
        if action == "check":
            messages.info(request, _("Not paid yet. Lightning payments arrive in seconds: check again in a moment."))
        return redirect(here)
    return render(request, "wallets/lightning.html", {
        "payment": payment, "back": back, "invoice": lightning_invoice_page(payment=payment),
        "check_url": here, "status_url": reverse("payments:lightning_status", args=[payment.pk]), "done_url": here,
    })

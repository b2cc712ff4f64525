"""The cart pages: add, change a quantity, remove, and check out several products of one store at
once. Plain forms that work without JavaScript; the cart lives in the buyer's session."""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from stall.accounts.services import buyer_from_request
from stall.checkout.cart import cart_add, cart_items, cart_lines, cart_set_quantity
from stall.checkout.services import checkout_create
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address, limits_hit
from stall.core.money import parse_amount
from stall.orders.checkout_pay import checkout_confirm
from stall.stores.selectors import store_get_public

from .views import CART_SESSION_KEY, remembered_code


class CartCheckoutForm(forms.Form):
    email = forms.EmailField(label=_("Your email"), help_text=_("Your receipt and download links go here."),
                             widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}))
    discount_code = forms.CharField(label=_("Discount code"), required=False, max_length=40,
                                    widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters",
                                                                  "spellcheck": "false"}))


def _store(slug):
    try:
        return store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None


def cart_get(request, store) -> dict:
    return dict(request.session.get(CART_SESSION_KEY, {}).get(store.pk, {}))


def _cart_save(request, store, cart: dict) -> None:
    carts = dict(request.session.get(CART_SESSION_KEY, {}))
    if cart:
        carts[store.pk] = cart
    else:
        carts.pop(store.pk, None)
    request.session[CART_SESSION_KEY] = carts


@require_http_methods(["GET", "POST"])
def cart(request, slug):
    """The cart, and (POST) checking it out: one checkout for all its lines, less a discount code."""
    store = _store(slug)
    cart = cart_get(request, store)
    code = remembered_code(request, store)
    form = CartCheckoutForm(request.POST or None, initial={"discount_code": code})
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            limits_hit(("checkout_address", client_address(request)), what="checkouts")
            if form.cleaned_data.get("discount_code"):
                # Codes are short enough to guess: tries are counted on their own, tighter limit.
                limits_hit(("discount_code_address", client_address(request)), what="code attempts")
            checkout = checkout_create(
                store=store, email=form.cleaned_data["email"], items=cart_items(cart=cart, store=store),
                discount_code=form.cleaned_data["discount_code"], buyer=buyer_from_request(request),
            )
            _cart_save(request, store, {})
            if checkout.amount_total == 0:
                checkout_confirm(checkout_id=checkout.pk, checkout=checkout)
                return redirect("checkout:complete", checkout_id=checkout.pk)
            return redirect("checkout:pay", checkout_id=checkout.pk)
        except RateLimited as exc:
            form_add_stall_error(form, exc)
            status = exc.status
        except StallError as exc:
            form_add_stall_error(form, exc)
    if form.errors and status == 200:
        status = 400
    lines = cart_lines(cart=cart, store=store)
    context = {"store": store, "lines": lines, "form": form, "subtotal": sum(line.amount for line in lines)}
    return render(request, "checkout/cart.html", context, status=status)


@require_POST
def cart_add_view(request, slug):
    """Add a product; a pay-what-you-want product with the amount the buyer typed on its page
    (in the page's way of writing numbers), refused under its minimum."""
    store = _store(slug)
    try:
        amount = request.POST.get("amount")
        if amount is not None:  # the product page's field; a form without it takes the suggested amount
            amount = parse_amount(amount, store.currency, locale=getattr(request, "LANGUAGE_CODE", "en") or "en")
        updated = cart_add(cart=cart_get(request, store), store=store, product_id=request.POST.get("product"),
                           quantity=request.POST.get("quantity") or 1, amount=amount)
    except StallError as exc:
        # Said on the cart page itself, as a refusal (400), with the cart as it was.
        lines = cart_lines(cart=cart_get(request, store), store=store)
        context = {"store": store, "lines": lines, "subtotal": sum(line.amount for line in lines),
                   "form": CartCheckoutForm(initial={"discount_code": remembered_code(request, store)}),
                   "error": gettext(str(exc.message))}
        return render(request, "checkout/cart.html", context, status=exc.status)
    _cart_save(request, store, updated)
    return redirect("stores:cart", slug=store.slug)


@require_POST
def cart_update_view(request, slug):
    """Set a line's quantity (0, or the Remove button, takes it out)."""
    store = _store(slug)
    product_id = request.POST.get("product", "")
    quantity = 0 if "remove" in request.POST else request.POST.get("quantity")
    try:
        updated = cart_set_quantity(cart=cart_get(request, store), product_id=product_id, quantity=quantity)
    except StallError as exc:
        messages.error(request, gettext(str(exc.message)))
    else:
        _cart_save(request, store, updated)
    return redirect("stores:cart", slug=store.slug)

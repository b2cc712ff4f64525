"""Dashboard pages for the books (stall.books): what is set aside (the tax reserve and the
envelopes), expenses with receipts, estimated tax, and the P&L with its CSV and beancount exports.
Thin views over stall.books' services and selectors; another store's expense is a 404."""

import csv
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from stall.books import selectors as books_selectors
from stall.books import services as books_services
from stall.books.beancount_export import beancount_journal
from stall.books.categories import categories_for_store, category_create
from stall.books.forms import (
    CategoryForm,
    EnvelopeForm,
    ExpenseForm,
    ExpenseImportForm,
    SplitForm,
    TaxPaymentForm,
)
from stall.books.models import Envelope, Expense
from stall.books.taxes import SAFE_HARBOUR_AGI, store_installments
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import amount_for_input, parse_amount
from stall.ledger.models import AccountKind
from stall.ledger.selectors import account_balance

from .views import _locale, _render, _store

EXPENSES_SHOWN = 200


def _amount(form, name, currency, locale, *, required=True):
    """Parse an amount box into minor units, or put the error on the field and return None."""
    text = (form.cleaned_data.get(name) or "").strip()
    if not text and not required:
        return None
    try:
        return parse_amount(text, currency, locale=locale, param=name)
    except StallError as exc:
        form.add_error(name, str(exc.message))
        return None


def _year(request) -> int:
    try:
        year = int(request.GET.get("year", ""))
    except ValueError:
        year = timezone.now().year
    return min(max(year, 2000), 2100)


@login_required
def books(request, slug):
    """The books' front page: available vs set aside, and this year's P&L by month."""
    store = _store(request, slug)
    year = _year(request)
    context = {
        "store": store, "section": "books", "year": year,
        "available": account_balance(kind=AccountKind.STORE_BALANCE, owner=store.pk, currency=store.currency),
        "set_aside": books_selectors.set_aside_balances(store=store),
        "pnl": books_selectors.profit_and_loss(store=store, granularity="month", start=date(year, 1, 1), end=date(year, 12, 31)),
        "settings": books_services.books_settings_get(store=store),
    }
    return _render(request, "dashboard/books.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def set_aside(request, slug):
    """The tax reserve's share, the envelopes, and what the estimates need."""
    store = _store(request, slug)
    settings = books_services.books_settings_get(store=store)
    locale = _locale(request)
    initial = {
        "tax_rate": settings.tax_rate_bp / 100, "country": settings.country, "tax_reminders": settings.tax_reminders,
        "last_year_tax": amount_for_input(settings.last_year_tax, store.currency) if settings.last_year_tax is not None else "",
        "last_year_agi": amount_for_input(settings.last_year_agi, store.currency) if settings.last_year_agi is not None else "",
    }
    form = SplitForm(request.POST if request.POST.get("form") == "split" else None, initial=initial)
    envelope_form = EnvelopeForm(request.POST if request.POST.get("form") == "envelope" else None, prefix="new")
    failed = None
    if request.method == "POST" and form.is_bound and form.is_valid():
        tax = _amount(form, "last_year_tax", store.currency, locale, required=False)
        agi = _amount(form, "last_year_agi", store.currency, locale, required=False)
        if not form.errors:
            try:
                books_services.books_settings_update(
                    store=store, tax_rate=form.cleaned_data["tax_rate"], country=form.cleaned_data["country"],
                    last_year_tax=tax, last_year_agi=agi, tax_reminders=form.cleaned_data["tax_reminders"])
            except StallError as exc:
                form_add_stall_error(form, exc)
            else:
                messages.success(request, "Saved. Each sale from now on sets its share aside.")
                return redirect("dashboard:books_set_aside", slug=store.slug)
        failed = form
    elif request.method == "POST" and envelope_form.is_bound and envelope_form.is_valid():
        try:
            books_services.envelope_create(store=store, **envelope_form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(envelope_form, exc)
        else:
            messages.success(request, f"Envelope “{envelope_form.cleaned_data['name']}” added.")
            return redirect("dashboard:books_set_aside", slug=store.slug)
    failed = failed or (envelope_form if envelope_form.is_bound else form if form.is_bound else None)
    envelopes = [(e, EnvelopeForm(initial={"name": e.name, "share": e.share_bp / 100}, prefix=f"e{e.pk}"))
                 for e in Envelope.objects.filter(store=store)]
    context = {"store": store, "section": "books", "form": form, "envelope_form": envelope_form, "envelopes": envelopes,
               "set_aside": books_selectors.set_aside_balances(store=store), "settings": settings}
    return _render(request, "dashboard/books_set_aside.html", context, failed)


@login_required
@require_POST
def envelope_edit(request, slug, envelope_id):
    store = _store(request, slug)
    form = EnvelopeForm(request.POST, prefix=f"e{envelope_id}")
    if form.is_valid():
        try:
            books_services.envelope_update(store=store, envelope_id=envelope_id, **form.cleaned_data)
        except NotFound:
            raise Http404 from None
        except StallError as exc:
            messages.error(request, str(exc.message))
        else:
            messages.success(request, "Envelope saved.")
    else:
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
    return redirect("dashboard:books_set_aside", slug=store.slug)


@login_required
@require_http_methods(["GET", "POST"])
def expenses(request, slug):
    """Expenses: the list, a new one (with its receipt), new categories, a CSV import."""
    store = _store(request, slug)
    categories = categories_for_store(store=store)
    which = request.POST.get("form")
    form = ExpenseForm(request.POST if which == "expense" else None, request.FILES if which == "expense" else None,
                       categories=categories, initial={"date": timezone.now().date()})
    category_form = CategoryForm(request.POST if which == "category" else None, prefix="cat")
    import_form = ExpenseImportForm(request.POST if which == "import" else None, request.FILES if which == "import" else None,
                                    prefix="csv")
    import_result = None
    if request.method == "POST":
        if which == "expense" and form.is_valid():
            amount = _amount(form, "amount", store.currency, _locale(request))
            if amount is not None:
                data = form.cleaned_data
                try:
                    books_services.expense_create(
                        store=store, date=data["date"], amount=amount, category=data["category"], vendor=data["vendor"],
                        note=data["note"], receipt=data["receipt"] or None, monthly=data["monthly"])
                except StallError as exc:
                    form_add_stall_error(form, exc)
                else:
                    messages.success(request, "Expense recorded.")
                    return redirect("dashboard:books_expenses", slug=store.slug)
        elif which == "category" and category_form.is_valid():
            try:
                category_create(store=store, name=category_form.cleaned_data["name"])
            except StallError as exc:
                form_add_stall_error(category_form, exc)
            else:
                messages.success(request, f"Category “{category_form.cleaned_data['name']}” added.")
                return redirect("dashboard:books_expenses", slug=store.slug)
        elif which == "import" and import_form.is_valid():
            upload = import_form.cleaned_data["file"]
            try:
                text = upload.read().decode("utf-8-sig")
                import_result = books_services.expenses_import_csv(store=store, text=text)
            except UnicodeDecodeError:
                import_form.add_error("file", "The file is not UTF-8 text: export it as CSV (UTF-8).")
            except StallError as exc:
                form_add_stall_error(import_form, exc)
    failed = next((f for f in (form, category_form, import_form) if f.is_bound and f.errors), None)
    if import_result is not None and import_result.errors and not import_result.created:
        failed = import_form  # nothing imported: a refusal
    expense_rows = list(Expense.objects.filter(store=store)[:EXPENSES_SHOWN])
    for e in expense_rows:
        e.category_name = categories.get(e.category, e.category)
    context = {
        "store": store, "section": "books", "form": form, "category_form": category_form, "import_form": import_form,
        "import_result": import_result, "categories": categories,
        "expenses": expense_rows,
    }
    status = 400 if failed is not None else 200
    return render(request, "dashboard/books_expenses.html", context, status=status)


@login_required
def expense_receipt(request, slug, expense_id):
    """The receipt file, to the store's creator only."""
    store = _store(request, slug)
    expense = Expense.objects.filter(store=store, pk=expense_id).first()
    if expense is None or not expense.receipt:
        raise Http404
    name = expense.receipt.name.rsplit("/", 1)[-1]
    return FileResponse(expense.receipt.open("rb"), as_attachment=False, filename=name)


@login_required
@require_POST
def expense_delete(request, slug, expense_id):
    store = _store(request, slug)
    try:
        books_services.expense_delete(store=store, expense_id=expense_id)
    except NotFound:
        raise Http404 from None
    messages.success(request, "Expense deleted.")
    return redirect("dashboard:books_expenses", slug=store.slug)


@login_required
@require_http_methods(["GET", "POST"])
def taxes(request, slug):
    """Estimated tax: the four periods of a year, and payments made."""
    store = _store(request, slug)
    year = _year(request)
    form = TaxPaymentForm(request.POST or None, initial={"year": year, "paid_on": timezone.now().date()})
    if request.method == "POST" and form.is_valid():
        amount = _amount(form, "amount", store.currency, _locale(request))
        if amount is not None:
            data = form.cleaned_data
            try:
                books_services.tax_payment_record(store=store, year=data["year"], quarter=data["quarter"], amount=amount,
                                                  paid_on=data["paid_on"], note=data["note"])
            except StallError as exc:
                form_add_stall_error(form, exc)
            else:
                messages.success(request, "Payment recorded.")
                return redirect(f"{request.path}?year={data['year']}")
    settings = books_services.books_settings_get(store=store)
    context = {"store": store, "section": "books", "year": year, "form": form, "settings": settings,
               "rate": settings.tax_rate_bp / 100, "harbour_110": (settings.last_year_agi or 0) > SAFE_HARBOUR_AGI,
               "us": settings.country == "US", "installments": store_installments(store=store, year=year)}
    return _render(request, "dashboard/books_taxes.html", context, form)


def _granularity(request) -> str:
    by = request.GET.get("by", "month")
    return by if by in books_selectors.GRANULARITIES else "month"


@login_required
def reports(request, slug):
    """Profit and loss by month, quarter or year; CSV and beancount exports."""
    store = _store(request, slug)
    by = _granularity(request)
    year = request.GET.get("year")
    start = end = None
    if year and year.isdigit():
        start, end = date(int(year), 1, 1), date(int(year), 12, 31)
    context = {"store": store, "section": "books", "by": by, "year": year or "",
               "pnl": books_selectors.profit_and_loss(store=store, granularity=by, start=start, end=end),
               "categories": categories_for_store(store=store)}
    return _render(request, "dashboard/books_reports.html", context)


@login_required
def report_csv(request, slug):
    store = _store(request, slug)
    by = _granularity(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{store.slug}-profit-and-loss-by-{by}.csv"'
    writer = csv.writer(response)
    for row in books_selectors.pnl_csv_rows(store=store, granularity=by):
        writer.writerow(row)
    return response


@login_required
def journal(request, slug):
    store = _store(request, slug)
    response = HttpResponse(beancount_journal(store=store), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{store.slug}.beancount"'
    return response

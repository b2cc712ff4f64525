"""The buyer's page of a commission, reached by the secret link in their emails and on the
order's page: the brief, the thread with the creator, the delivery, and "Accept". Works without
JavaScript. The files of a commission are served here, to whoever holds its link, and on the
dashboard to its store's creator (``file_response``)."""

from django.contrib import messages
from django.core.files.storage import storages
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error

from .forms import MessageForm
from .models import Author, CommissionFile, FileRole
from .selectors import commission_file, commission_for_buyer
from .services import commission_accept, commission_message_add


def _commission(token):
    try:
        return commission_for_buyer(token=token)
    except NotFound:
        raise Http404 from None


def file_response(file: CommissionFile) -> FileResponse:
    try:
        handle = storages["private"].open(file.storage_name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    response = FileResponse(handle, content_type=file.content_type)
    response.headers["Content-Disposition"] = content_disposition_header(True, file.name)
    response.headers["Content-Length"] = str(file.size)
    response.headers["Cache-Control"] = "private, no-store"
    return response


def buyer_page_context(commission, *, form=None, error=None) -> dict:
    files = list(commission.files.all())
    return {
        "commission": commission, "store": commission.store, "product": commission.product,
        "brief_files": [f for f in files if f.role == FileRole.BRIEF],
        "delivery_files": [f for f in files if f.role == FileRole.DELIVERY],
        "thread": list(commission.messages.all()), "form": form or MessageForm(), "error": error,
    }


@require_http_methods(["GET", "POST"])
def buyer_page(request, token):
    commission = _commission(token)
    form = MessageForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            commission_message_add(commission=commission, author=Author.BUYER, body=form.cleaned_data["body"])
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, _("Message sent."))
            return redirect("commissions:buyer", token=token)
    status = 400 if form.errors else 200
    return render(request, "commissions/buyer.html", buyer_page_context(commission, form=form), status=status)


@require_POST
def buyer_accept(request, token):
    commission = _commission(token)
    try:
        commission_accept(commission_id=commission.pk)
    except StallError as exc:
        return render(request, "commissions/buyer.html", buyer_page_context(commission, error=exc), status=exc.status)
    messages.success(request, _("Accepted. Thank you! %(store)s has been paid.") % {"store": commission.store.name})
    return redirect("commissions:buyer", token=token)


def buyer_file(request, token, file_id):
    commission = _commission(token)
    try:
        return file_response(commission_file(commission=commission, file_id=file_id))
    except NotFound:
        raise Http404 from None

"""Writes for the email list and customers: sign-up with double opt-in, confirmation,
unsubscribe (link and RFC 8058 one-click), bounces, consent recorded at checkout, CSV import."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from stall.accounts.models import Customer
from stall.core.email import email_send
from stall.core.languages import language_for, language_to_record
from stall.stores.models import Store

from .errors import AudienceInvalid, ImportInvalid
from .models import Subscriber, SubscriberSource, SubscriberStatus
from .tokens import confirm_token, confirm_token_read, unsubscribe_token, unsubscribe_token_read

SUPPRESSED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED)


def _email_checked(email: object, param: str = "email") -> str:
    if not isinstance(email, str) or not email.strip():
        raise AudienceInvalid(gettext_noop("Enter an email address."), param=param)
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise AudienceInvalid(gettext_noop("Enter a valid email address."), param=param) from None
    return email


def customer_ensure(*, store: Store, email: str, name: str = "") -> Customer:
    """The store's customer with this (lower-case) email, created if new; a name fills an empty one."""
    customer = Customer.objects.filter(store=store, email__iexact=email).first()
    if customer is None:
        try:
            with transaction.atomic():
                customer = Customer.objects.create(store=store, email=email, name=name[:120])
        except IntegrityError:  # created meanwhile by a purchase
            customer = Customer.objects.get(store=store, email__iexact=email)
    elif name and not customer.name:
        customer.name = name[:120]
        customer.save(update_fields=["name"])
    return customer


def unsubscribe_url(*, store_id: str, email: str) -> str:
    return settings.BASE_URL + reverse("audience:unsubscribe", args=[unsubscribe_token(store_id=store_id, email=email)])


@transaction.atomic
def subscriber_sign_up(*, store: Store, email: str) -> Subscriber:
    """Someone asks to join the list from a form: a pending row and a confirmation email.

    Someone already subscribed gets nothing (the answer is the same, so the form does not tell
    who is on the list). An unsubscribed or bounced address may ask again; it stays suppressed
    until the link in the new email is followed."""
    email = _email_checked(email)
    customer = customer_ensure(store=store, email=email)
    language = language_to_record()  # the page's, where they asked
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(
        store=store, email=email,
        defaults={"customer": customer, "status": SubscriberStatus.PENDING, "source": SubscriberSource.FORM,
                  "language": language},
    )
    if subscriber.status == SubscriberStatus.SUBSCRIBED:
        return subscriber
    if subscriber.language != language:  # asking again, from a page in another language
        subscriber.language = language
        subscriber.save(update_fields=["language"])
    token = confirm_token(store_id=store.pk, email=email)
    url = settings.BASE_URL + reverse("audience:confirm", args=[token])

    def send() -> None:
        with translation.override(language_for(language)):
            email_send(
                to=email, subject=gettext("Confirm your subscription to %(store)s") % {"store": store.name},
                template="audience/email/confirm", context={"store": store, "confirm_url": url},
            )

    transaction.on_commit(send)
    return subscriber


@transaction.atomic
def subscriber_confirm(*, token: str) -> Subscriber:
    """The link in the confirmation email was followed: the address is subscribed (double opt-in)."""
    store_id, email = confirm_token_read(token)
    subscriber = Subscriber.objects.select_for_update().select_related("store").filter(store_id=store_id, email=email).first()
    if subscriber is None:
        raise AudienceInvalid("This link is not valid or has expired.", code="token_invalid")
    if subscriber.status != SubscriberStatus.SUBSCRIBED:
        subscriber.status = SubscriberStatus.SUBSCRIBED
        subscriber.confirmed_at = timezone.now()
        subscriber.unsubscribed_at = None
        subscriber.bounced_at = None
        subscriber.save(update_fields=["status", "confirmed_at", "unsubscribed_at", "bounced_at"])
    return subscriber


@transaction.atomic
def subscriber_unsubscribe(*, token: str) -> tuple[Store, str]:
    """The unsubscribe link (or the mail client's one-click POST) was used. Idempotent; an address
    that was never on the list is recorded as unsubscribed, so a later import cannot add it."""
    store_id, email = unsubscribe_token_read(token)
    store = Store.objects.filter(pk=store_id).first()
    if store is None:
        raise AudienceInvalid("This link is not valid or has expired.", code="token_invalid")
    subscriber_suppress(store=store, email=email, status=SubscriberStatus.UNSUBSCRIBED)
    return store, email


def subscriber_suppress(*, store: Store, email: str, status: str) -> Subscriber:
    """Mark an address unsubscribed or bounced; no broadcast reaches it afterwards."""
    now = timezone.now()
    subscriber = Subscriber.objects.select_for_update().filter(store=store, email=email).first()
    if subscriber is None:
        subscriber = Subscriber.objects.create(
            store=store, email=email, customer=customer_ensure(store=store, email=email),
            status=status, source=SubscriberSource.FORM,
        )
    elif subscriber.status == status:
        return subscriber
    subscriber.status = status
    if status == SubscriberStatus.BOUNCED:
        subscriber.bounced_at = now
    else:
        subscriber.unsubscribed_at = now
    subscriber.save(update_fields=["status", "bounced_at", "unsubscribed_at"])
    return subscriber


def subscriber_bounce(*, store: Store, email: str) -> Subscriber:
    with transaction.atomic():
        return subscriber_suppress(store=store, email=email.lower(), status=SubscriberStatus.BOUNCED)


def subscriber_consent_at_checkout(*, store_id: str, email: str, customer_id: str | None = None, language: str = "") -> None:
    """A buyer ticked "email me" at checkout: subscribed at once (the purchase came from that
    address), unless they had unsubscribed or bounced before: that stands until they sign up again.
    ``language``: the checkout's (``Checkout.language``), for the broadcasts' footer."""
    email = email.lower()
    existing = Subscriber.objects.filter(store_id=store_id, email=email).first()
    if existing is not None:
        if existing.status == SubscriberStatus.PENDING:
            Subscriber.objects.filter(pk=existing.pk).update(status=SubscriberStatus.SUBSCRIBED, confirmed_at=timezone.now(),
                                                             language=language)
        return
    if customer_id is None:
        customer_id = Customer.objects.get(store_id=store_id, email__iexact=email).pk
    with transaction.atomic():
        try:
            Subscriber.objects.create(
                store_id=store_id, email=email, customer_id=customer_id, status=SubscriberStatus.SUBSCRIBED,
                source=SubscriberSource.CHECKOUT, confirmed_at=timezone.now(), language=language,
            )
        except IntegrityError:
            pass


# --- CSV import ------------------------------------------------------------------------------

IMPORT_MAX_ROWS = 50_000
CONSENT_YES = {"yes", "y", "true", "1", "opted in", "opt-in", "subscribed"}
CONSENT_NO = {"no", "n", "false", "0", ""}


@dataclass
class ImportResult:
    customers: int = 0
    subscribed: int = 0
    suppressed: int = 0  # consented, but unsubscribed or bounced here before: left off the list
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, what is wrong)


def customers_import(*, store: Store, data: bytes | str) -> ImportResult:
    """Import a list: columns ``email`` and ``consent`` (required), ``name`` (optional), in any
    order, with a header row. Every good row is kept (a customer; on the list only with
    consent); every bad row is reported with its line number. A file without the required
    columns is refused whole."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportInvalid("The file is not UTF-8 text. Save it as CSV (UTF-8) and try again.", param="file") from None
    reader = csv.reader(io.StringIO(data))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportInvalid("The file is empty.", param="file") from None
    except csv.Error as exc:
        raise ImportInvalid(f"The file is not a CSV file: {exc}.", param="file") from None
    missing = [c for c in ("email", "consent") if c not in header]
    if missing:
        raise ImportInvalid(
            f"The file needs the columns email and consent (missing: {', '.join(missing)}); found: {', '.join(header) or 'none'}.",
            param="file",
        )
    col = {name: header.index(name) for name in ("email", "consent", "name") if name in header}
    result = ImportResult()
    seen: set[str] = set()
    try:
        for index, row in enumerate(reader, start=2):
            if index - 1 > IMPORT_MAX_ROWS:
                result.errors.append((index, f"Only the first {IMPORT_MAX_ROWS} rows are imported."))
                break
            if not any(cell.strip() for cell in row):
                continue
            _import_row(store=store, row=row, col=col, line=index, result=result, seen=seen)
    except csv.Error as exc:
        result.errors.append((reader.line_num, f"Unreadable CSV: {exc}."))
    return result


def _import_row(*, store, row, col, line, result, seen) -> None:
    def cell(name):
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    try:
        email = _email_checked(cell("email"))
    except AudienceInvalid as exc:
        result.errors.append((line, f"{exc.message} ({cell('email') or 'empty'})"))
        return
    consent = cell("consent").lower()
    if consent not in CONSENT_YES and consent not in CONSENT_NO:
        result.errors.append((line, f"Consent must be yes or no, not “{cell('consent')}”."))
        return
    if email in seen:
        result.errors.append((line, f"{email} is in the file twice; the first row was kept."))
        return
    seen.add(email)
    with transaction.atomic():
        customer = customer_ensure(store=store, email=email, name=cell("name"))
        result.customers += 1
        if consent in CONSENT_YES:
            subscriber = Subscriber.objects.filter(store=store, email=email).first()
            if subscriber is None:
                Subscriber.objects.create(
                    store=store, email=email, customer=customer, status=SubscriberStatus.SUBSCRIBED,
                    source=SubscriberSource.IMPORT, confirmed_at=timezone.now(),
                )
                result.subscribed += 1
            elif subscriber.status in SUPPRESSED:
                result.suppressed += 1
            elif subscriber.status == SubscriberStatus.PENDING:
                Subscriber.objects.filter(pk=subscriber.pk).update(status=SubscriberStatus.SUBSCRIBED, confirmed_at=timezone.now())
                result.subscribed += 1

"""Emails about a commission's steps, sent as tasks after the commit. The buyer's are in the
language they bought in (the checkout's, as their receipt); the creator's are English."""

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, gettext_noop
from huey.contrib.djhuey import db_task

from stall.checkout.models import Checkout
from stall.core.email import email_send
from stall.core.languages import language_for

from .models import Commission

# step -> (to the buyer?, subject)
_NOTICES = {
    "opened": (False, "New commission: {product}"),
    "message_to_creator": (False, "New message about the commission {product}"),
    "accepted": (False, "Commission accepted: {product}"),
    "message_to_buyer": (True, gettext_noop("%(store)s wrote about your commission")),
    "delivered": (True, gettext_noop("%(store)s delivered your commission")),
    "declined": (True, gettext_noop("%(store)s declined your commission: you are refunded")),
}


def buyer_url(commission: Commission) -> str:
    return settings.BASE_URL + reverse("commissions:buyer", args=[commission.access_token])


def creator_url(commission: Commission) -> str:
    return settings.BASE_URL + reverse("dashboard:commission", args=[commission.store.slug, commission.pk])


@db_task(retries=5, retry_delay=settings.STALL_TASK_RETRY_DELAY_SECONDS)
def commission_notice_send(commission_id: str, step: str) -> None:
    """Tell the buyer or the creator what just happened, with the link to their page of it."""
    commission = Commission.objects.select_related("store__owner", "product").get(pk=commission_id)
    to_buyer, subject = _NOTICES[step]
    store = commission.store.name
    language = Checkout.objects.filter(pk=commission.checkout_id).values_list("language", flat=True).first()
    if step == "opened":
        # The buyer keeps the link to their commission's page from this email too.
        with translation.override(language_for(language)):
            email_send(to=commission.email,
                       subject=gettext("Your commission with %(store)s") % {"store": store},
                       template="commissions/email/notice",
                       context={"commission": commission, "step": "opened_buyer", "url": buyer_url(commission)},
                       reply_to=commission.store.support_email or None)
    if to_buyer:
        with translation.override(language_for(language)):
            email_send(to=commission.email, subject=gettext(subject) % {"store": store},
                       template="commissions/email/notice",
                       context={"commission": commission, "step": step, "url": buyer_url(commission)},
                       reply_to=commission.store.support_email or None)
        return
    with translation.override("en"):
        email_send(to=commission.store.owner.email, subject=subject.format(product=commission.product.name),
                   template="commissions/email/notice",
                   context={"commission": commission, "step": step, "url": creator_url(commission)})

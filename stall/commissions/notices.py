"""Emails about a commission's steps, sent as tasks after the commit."""

from django.conf import settings
from django.urls import reverse
from huey.contrib.djhuey import db_task

from stall.core.email import email_send

from .models import Commission

# step -> (to the buyer?, subject)
_NOTICES = {
    "opened": (False, "New commission: {product}"),
    "message_to_creator": (False, "New message about the commission {product}"),
    "accepted": (False, "Commission accepted: {product}"),
    "message_to_buyer": (True, "{store} wrote about your commission"),
    "delivered": (True, "{store} delivered your commission"),
    "declined": (True, "{store} declined your commission: you are refunded"),
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
    subject = subject.format(product=commission.product.name, store=commission.store.name)
    if step == "opened":
        # The buyer keeps the link to their commission's page from this email too.
        email_send(to=commission.email, subject=f"Your commission with {commission.store.name}",
                   template="commissions/email/notice",
                   context={"commission": commission, "step": "opened_buyer", "url": buyer_url(commission)},
                   reply_to=commission.store.support_email or None)
    to = commission.email if to_buyer else commission.store.owner.email
    url = buyer_url(commission) if to_buyer else creator_url(commission)
    email_send(to=to, subject=subject, template="commissions/email/notice",
               context={"commission": commission, "step": step, "url": url},
               reply_to=(commission.store.support_email or None) if to_buyer else None)

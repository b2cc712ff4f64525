"""A buyer's commissions in their library (registered with ``stall.orders.library``): each paid
commission, its state in the buyer's words and the link to its page, the same page the emails
lead to. One query, whatever the number of commissions."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import pgettext_lazy

from stall.orders.library import LibraryEntry

from .models import Commission, CommissionStatus

# The buyer's side of each state (the creator's dashboard keeps the model's English labels).
BUYER_STATUS = {
    CommissionStatus.AWAITING_DELIVERY: pgettext_lazy("commission status", "In progress"),
    CommissionStatus.DELIVERED: pgettext_lazy("commission status", "Delivered: review it"),
    CommissionStatus.ACCEPTED: pgettext_lazy("commission status", "Accepted"),
    CommissionStatus.DECLINED: pgettext_lazy("commission status", "Declined and refunded"),
}


def library_commissions(*, email: str) -> list[LibraryEntry]:
    """The email's paid commissions, in every store (a reserved one was never paid; an expired
    one's checkout lapsed): neither is a purchase."""
    commissions = (Commission.objects.filter(email__iexact=email, order__isnull=False, status__in=list(BUYER_STATUS))
                   .select_related("product", "store").order_by("-pk"))
    return [
        LibraryEntry(
            name=commission.product.name, store_name=commission.store.name, order_id=commission.order_id,
            created_at=commission.opened_at or commission.created_at, status=str(BUYER_STATUS[commission.status]),
            url=reverse("commissions:buyer", args=[commission.access_token]),
            action=str(pgettext_lazy("a link in the library", "Open the commission")), kind="commission",
        )
        for commission in commissions
    ]

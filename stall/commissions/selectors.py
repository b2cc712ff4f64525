from .errors import CommissionNotFound
from .models import OPEN_STATUSES, Commission, CommissionFile, ServiceOffer


def commissions_for_store(*, store):
    return Commission.objects.filter(store=store).select_related("product").order_by("-pk")


def commission_queue(*, store) -> list[Commission]:
    """The creator's open commissions, oldest paid first: the order to work through them."""
    return list(Commission.objects.filter(store=store, status__in=OPEN_STATUSES[1:])
                .select_related("product").order_by("opened_at", "pk"))


def commission_for_buyer(*, token: str) -> Commission:
    commission = Commission.objects.select_related("store", "product").filter(access_token=token or "").first()
    if commission is None or commission.order_id is None:
        raise CommissionNotFound()
    return commission


def commission_for_order(*, order) -> Commission | None:
    return Commission.objects.filter(order=order).first()


def commission_file(*, commission: Commission, file_id: str) -> CommissionFile:
    file = CommissionFile.objects.filter(commission=commission, pk=file_id).first()
    if file is None:
        raise CommissionNotFound("No such file.")
    return file


def service_offer_for(*, product) -> ServiceOffer | None:
    return ServiceOffer.objects.filter(product=product).first()


def service_offers_for_store(*, store) -> dict[str, ServiceOffer]:
    return {o.product_id: o for o in ServiceOffer.objects.filter(product__store=store)}

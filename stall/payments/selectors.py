import dataclasses
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import QuerySet

from stall.core.errors import NotFound
from stall.stores.models import Store

from .models import LightningAccount, Refund, SavedPaymentMethod, StripeAccount


def refunds_for_store(*, store: Store) -> QuerySet[Refund]:
    return Refund.objects.filter(store=store).order_by("-pk")


def refund_get(*, store: Store, refund_id: str) -> Refund:
    """A refund of ``store``; another store's refund is "not found", never "forbidden"."""
    refund = Refund.objects.filter(store=store, pk=refund_id).first()
    if refund is None:
        raise NotFound("No such refund.")
    return refund


@dataclasses.dataclass(frozen=True)
class StripeConfig:
    """The Stripe account a store's card payments go to."""

    secret_key: str
    publishable_key: str
    webhook_secret: str
    api_base: str = ""  # empty: Stripe itself
    store_id: str | None = None  # the store with its own keys; None for the platform's account


def stripe_config_for_store(store: Store | None) -> StripeConfig | None:
    """The store's own Stripe keys if it set them, else the platform's from the environment, else None."""
    if store is not None:
        account = StripeAccount.objects.filter(store_id=store.pk).first()
        if account is not None:
            return StripeConfig(
                secret_key=account.secret_key, publishable_key=account.publishable_key,
                webhook_secret=account.webhook_secret, api_base=account.api_base.rstrip("/"), store_id=store.pk,
            )
    return stripe_platform_config()


def stripe_platform_config() -> StripeConfig | None:
    """The platform's Stripe account from the environment (STRIPE_SECRET_KEY and friends), if set."""
    if not settings.STRIPE_SECRET_KEY:
        return None
    return StripeConfig(
        secret_key=settings.STRIPE_SECRET_KEY, publishable_key=settings.STRIPE_PUBLISHABLE_KEY,
        webhook_secret=settings.STRIPE_WEBHOOK_SECRET, api_base=settings.STRIPE_API_BASE,
    )


def saved_payment_methods_for_email(*, email: str, rail: str | None = None) -> QuerySet[SavedPaymentMethod]:
    """A buyer's saved payment methods that are still usable, newest first."""
    saved = SavedPaymentMethod.objects.filter(email=email, detached_at__isnull=True)
    if rail is not None:
        saved = saved.filter(rail=rail)
    return saved.order_by("-pk")


def saved_method_for_payment(payment) -> SavedPaymentMethod | None:
    """The card a checkout's payment kept for later charges (Checkout.save_card on Stripe: the
    payment names the card it was paid with), or None."""
    if payment is None or payment.rail != "stripe" or not payment.payment_method.startswith("pm_"):
        return None
    return SavedPaymentMethod.objects.filter(
        rail="stripe", method_ref=payment.payment_method, detached_at__isnull=True,
    ).exclude(customer_ref="").order_by("-pk").first()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_csp(config: StripeConfig) -> dict[str, list[str]]:
    """What the Stripe page adds to our Content-Security-Policy: Stripe.js, its frames, its API.
    Only this page gets it; every other page keeps the policy with no third party at all."""
    js = _origin(settings.STRIPE_JS_URL)
    extra = {"script-src": [js], "frame-src": [js], "connect-src": [js]}
    if js == "https://js.stripe.com":
        # Stripe's published list for Stripe.js and the Payment Element.
        extra["script-src"].append("https://*.js.stripe.com")
        extra["frame-src"] += ["https://*.js.stripe.com", "https://hooks.stripe.com"]
        extra["connect-src"].append("https://api.stripe.com")
    if config.api_base:
        extra["connect-src"].append(_origin(config.api_base))
    return extra


@dataclasses.dataclass(frozen=True)
class LightningConfig:
    """The LNbits wallet a store's Lightning payments are paid into."""

    url: str
    invoice_key: str
    store_id: str | None = None


def lightning_config_for_store(store: Store | None) -> LightningConfig | None:
    """The store's LNbits wallet, or None: Lightning is offered only where a store set one up."""
    if store is None:
        return None
    account = LightningAccount.objects.filter(store_id=store.pk).first()
    if account is None:
        return None
    return LightningConfig(url=account.url.rstrip("/"), invoice_key=account.invoice_key, store_id=store.pk)

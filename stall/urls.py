from django.conf import settings
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.i18n import set_language
from django.views.static import serve

from stall.api import api
from stall.core import views as core_views
from stall.ops.metrics import metrics
from stall.storefront.urls import checkout_patterns, store_patterns

handler400 = "stall.core.views.bad_request"
handler404 = "stall.core.views.not_found"
handler500 = "stall.core.views.server_error"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", api.urls),
    # The footer's language switch. Without a CSRF token: every page shows the switch, and a
    # token would set a cookie and make each page unique; a forged request can only change the
    # language a visitor reads in, which the footer changes back.
    path("i18n/setlang/", csrf_exempt(set_language), name="set_language"),
    # First among the pages: a post's unlock is the most frequent request, and the URLconf is
    # tried in order (14 levels deep it was 6% of an unlock's time). Its paths all start with
    # /s/<store>/posts/, /reader/ or /tips/, which nothing else here uses; it must come before
    # the store pages (see stall/content/urls.py).
    path("", include("stall.content.urls")),
    path("", include("stall.accounts.urls")),
    path("dashboard/", include("stall.dashboard.urls")),
    path("", include("stall.orders.urls")),
    path("", include((checkout_patterns, "checkout"))),
    path("", include("stall.payments.urls")),
    path("", include("stall.wallets.urls")),
    path("", include("stall.memberships.urls")),
    path("", include("stall.metering.urls")),
    path("", include("stall.audience.urls")),  # before the store pages: /s/<store>/subscribe/
    path("", include("stall.campaigns.urls")),
    path("", include("stall.commissions.urls")),
    path("", include("stall.wallets.gift_urls")),  # before the store pages: /s/<store>/redeem/
    path("", include("stall.wallets.allowance_urls")),  # before the store pages: /s/<store>/allowance/
    path("", include((store_patterns, "stores"))),
]

if "storages.backends.s3" not in settings.STORAGES["default"]["BACKEND"]:
    # Public media (covers, avatars) from the local disk. Product files are never under MEDIA_ROOT:
    # they live in the private storage and are only served through signed download links.
    urlpatterns.append(re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))

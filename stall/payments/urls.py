from django.urls import path

from . import lightning_views, stripe_views

app_name = "payments"
urlpatterns = [
    path("webhooks/stripe", stripe_views.stripe_webhook, name="stripe_webhook"),
    path("webhooks/stripe/<str:store_id>", stripe_views.stripe_webhook, name="stripe_webhook_store"),
    path("webhooks/lightning/<str:payment_id>", lightning_views.lightning_webhook, name="lightning_webhook"),
    path("lightning/<str:payment_id>/status", lightning_views.lightning_status, name="lightning_status"),
]

from django.urls import path

from . import stripe_views

app_name = "payments"
urlpatterns = [
    path("webhooks/stripe", stripe_views.stripe_webhook, name="stripe_webhook"),
    path("webhooks/stripe/<str:store_id>", stripe_views.stripe_webhook, name="stripe_webhook_store"),
]

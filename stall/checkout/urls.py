from django.urls import path

from stall.payments import stripe_views
from stall.payments import views as payment_views

from . import views

app_name = "checkout"
urlpatterns = [
    path("buy/<str:product_id>/", views.buy, name="buy"),
    path("checkout/<str:checkout_id>/", payment_views.sandbox_pay, name="pay"),
    path("checkout/<str:checkout_id>/authenticate/", payment_views.sandbox_authenticate, name="authenticate"),
    path("checkout/<str:checkout_id>/stripe/return/", stripe_views.stripe_return, name="stripe_return"),
    path("checkout/<str:checkout_id>/complete/", views.complete, name="complete"),
]

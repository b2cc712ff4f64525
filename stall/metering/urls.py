from django.urls import path

from . import views

app_name = "metering"
urlpatterns = [
    path("usage/", views.usage_billing, name="usage"),
    path("usage/<str:subscription_id>/card/", views.usage_card, name="card"),
]

from django.urls import path

from . import views

app_name = "stores"
urlpatterns = [
    path("", views.front, name="front"),
    path("s/<slug:slug>/", views.store_page, name="store"),
    path("s/<slug:slug>/<slug:product_slug>/", views.product_page, name="product"),
]

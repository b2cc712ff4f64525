from django.urls import path

from . import gift_views

# Included before the store pages: their /s/<store>/<product>/ must not take /s/<store>/redeem/.
app_name = "gift_cards"
urlpatterns = [
    path("s/<slug:slug>/redeem/", gift_views.gift_card_redeem, name="redeem"),
    path("s/<slug:slug>/gift/<slug:product_slug>/", gift_views.gift_card_buy, name="buy"),
]

"""The storefront's addresses, under the URL namespaces the templates use ("stores", "checkout")."""

from django.urls import path

from . import cart, pay, views

store_patterns = [
    path("", views.front, name="front"),
    path("embed.js", views.embed_js, name="embed_js"),
    path("s/<slug:slug>/", views.store_page, name="store"),
    path("s/<slug:slug>/cart/", cart.cart, name="cart"),
    path("s/<slug:slug>/cart/add/", cart.cart_add_view, name="cart_add"),
    path("s/<slug:slug>/cart/update/", cart.cart_update_view, name="cart_update"),
    path("s/<slug:slug>/<slug:product_slug>/", views.product_page, name="product"),
]

checkout_patterns = [
    path("buy/<str:product_id>/", views.buy, name="buy"),
    path("checkout/<str:checkout_id>/", pay.pay, name="pay"),
    path("checkout/<str:checkout_id>/authenticate/", pay.authenticate, name="authenticate"),
    path("checkout/<str:checkout_id>/stripe/return/", pay.stripe_return, name="stripe_return"),
    path("checkout/<str:checkout_id>/lightning/", pay.lightning_pay, name="lightning"),
    path("checkout/<str:checkout_id>/complete/", views.complete, name="complete"),
]

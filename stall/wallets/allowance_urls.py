"""Buyers' allowance pages. Included before the store pages, whose /s/<store>/<product>/ would
otherwise take /s/<store>/allowance/."""

from django.urls import path

from . import allowance_views as views

app_name = "allowances"
urlpatterns = [
    path("s/<slug:slug>/allowance/", views.allowance_store, name="store"),
    path("wallet/allowances/", views.allowance_list, name="list"),
    path("wallet/allowances/sign-in/", views.allowance_sign_in, name="sign_in"),
    path("wallet/allowances/<str:allowance_id>/revoke/", views.allowance_revoke_view, name="revoke"),
]

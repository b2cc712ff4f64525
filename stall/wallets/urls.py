from django.urls import path

from . import views

app_name = "wallets"
urlpatterns = [
    path("wallet/", views.wallet_page, name="wallet"),
    path("wallet/tab/", views.tab_page, name="tab"),
    path("wallet/tab/settle/<str:checkout_id>/", views.settle_and_buy, name="settle_and_buy"),
    path("wallet/pay/<str:checkout_id>/", views.checkout_pay, name="pay"),
    path("wallet/payments/<str:payment_id>/authenticate/", views.authenticate, name="authenticate"),
    path("wallet/payments/<str:payment_id>/card/", views.card_page, name="card"),
    path("wallet/payments/<str:payment_id>/lightning/", views.lightning_top_up, name="lightning"),
    path("wallet/payments/<str:payment_id>/card/return/", views.card_return, name="card_return"),
]

from django.urls import path

from . import views

# Included before the store pages: their /s/<store>/<product>/ must not take /s/<store>/join/….
app_name = "memberships"
urlpatterns = [
    path("s/<slug:slug>/join/<str:tier_id>/", views.join, name="join"),
    path("s/<slug:slug>/join/<str:tier_id>/card/", views.join_card, name="join_card"),
    path("s/<slug:slug>/join/<str:tier_id>/card/return/", views.join_card_return, name="join_card_return"),
    path("memberships/", views.manage, name="manage"),
    path("memberships/<str:subscription_id>/card/", views.card, name="card"),
    path("memberships/<str:subscription_id>/card/return/", views.card_return, name="card_return"),
    path("memberships/<str:subscription_id>/welcome/", views.welcome, name="welcome"),
    path("memberships/<str:subscription_id>/<str:action>/", views.manage_action, name="action"),
]

from django.urls import path

from . import views

# Included before the store pages: their /s/<store>/<product>/ must not take /s/<store>/join/….
app_name = "memberships"
urlpatterns = [
    path("s/<slug:slug>/join/<str:tier_id>/", views.join, name="join"),
    path("memberships/", views.manage, name="manage"),
    path("memberships/<str:subscription_id>/welcome/", views.welcome, name="welcome"),
    path("memberships/<str:subscription_id>/<str:action>/", views.manage_action, name="action"),
]

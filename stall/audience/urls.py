from django.urls import path

from . import views

app_name = "audience"
urlpatterns = [
    path("s/<slug:slug>/subscribe/", views.signup, name="signup"),
    path("list/confirm/<str:token>/", views.confirm, name="confirm"),
    path("list/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]

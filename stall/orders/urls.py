from django.urls import path

from . import views

app_name = "orders"
urlpatterns = [
    path("library/", views.library, name="library"),
    path("library/enter/<str:token>/", views.library_enter, name="library_enter"),
    path("library/logout/", views.library_logout, name="library_logout"),
    path("library/keys/<str:license_id>/seats/", views.library_seats, name="library_seats"),
    path("d/<str:token>/", views.download, name="download"),
]

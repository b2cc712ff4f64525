from django.urls import path

from . import views

app_name = "commissions"
urlpatterns = [
    path("commissions/<str:token>/", views.buyer_page, name="buyer"),
    path("commissions/<str:token>/accept/", views.buyer_accept, name="buyer_accept"),
    path("commissions/<str:token>/files/<str:file_id>/", views.buyer_file, name="buyer_file"),
]

from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("campaigns/<str:campaign_id>/", views.campaign_page, name="campaign"),
    path("campaigns/<str:campaign_id>/progress/", views.campaign_progress, name="progress"),
    path("pledges/", views.pledges_mine, name="mine"),
    path("pledges/<str:pledge_id>/", views.pledge_page, name="pledge"),
]

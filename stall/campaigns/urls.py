from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("campaigns/<str:campaign_id>/", views.campaign_page, name="campaign"),
    path("campaigns/<str:campaign_id>/progress/", views.campaign_progress, name="progress"),
    path("campaigns/<str:campaign_id>/card/<str:setup_id>/", views.card_page, name="card"),
    path("campaigns/<str:campaign_id>/card/<str:setup_id>/return/", views.card_return, name="card_return"),
    path("pledges/", views.pledges_mine, name="mine"),
    path("pledges/<str:pledge_id>/", views.pledge_page, name="pledge"),
]

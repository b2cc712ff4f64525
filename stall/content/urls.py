from django.urls import path

from . import feeds, views

# Included before the store pages: their /s/<store>/<product>/ would otherwise take /s/<store>/posts/.
app_name = "content"
urlpatterns = [
    path("s/<slug:slug>/posts/", views.posts, name="posts"),
    path("s/<slug:slug>/posts/feed.xml", feeds.PostsFeed(), name="feed"),
    path("s/<slug:slug>/posts/feed/<str:token>.xml", feeds.PrivatePostsFeed(), name="private_feed"),
    path("s/<slug:slug>/posts/<slug:post_slug>/", views.post_detail, name="post"),
    path("s/<slug:slug>/posts/<slug:post_slug>/unlock/", views.post_unlock_view, name="unlock"),
    path("s/<slug:slug>/posts/<slug:post_slug>/refund/", views.post_refund_view, name="refund"),
    path("s/<slug:slug>/reader/sign-in/", views.reader_sign_in, name="sign_in"),
    path("s/<slug:slug>/tips/new/", views.tip, name="tip"),
]

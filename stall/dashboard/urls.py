from django.urls import path

from . import account, memberships, payments, posts, views, webhooks

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    # "new-store" is a reserved store address, so it never shadows a store's overview below.
    path("new-store/", views.store_new, name="store_new"),
    # No store page is <store>/two-factor/, so a store called "account" keeps its overview.
    path("account/two-factor/", account.two_factor_settings, name="two_factor"),
    path("<slug:slug>/", views.overview, name="overview"),
    path("<slug:slug>/settings/", views.store_settings, name="settings"),
    path("<slug:slug>/link-shared/", views.link_shared, name="link_shared"),
    path("<slug:slug>/products/", views.products, name="products"),
    path("<slug:slug>/products/new/", views.product_new, name="product_new"),
    path("<slug:slug>/products/<str:product_id>/", views.product_edit, name="product"),
    path("<slug:slug>/products/<str:product_id>/files/", views.product_files_add, name="product_files_add"),
    path("<slug:slug>/products/<str:product_id>/test-purchase/", views.product_test_purchase, name="product_test_purchase"),
    path("<slug:slug>/products/<str:product_id>/files/<str:file_id>/delete/", views.product_file_remove,
         name="product_file_delete"),
    path("<slug:slug>/posts/", posts.posts, name="posts"),
    path("<slug:slug>/posts/new/", posts.post_new, name="post_new"),
    path("<slug:slug>/posts/<str:post_id>/", posts.post_edit, name="post"),
    path("<slug:slug>/posts/<str:post_id>/publish/", posts.post_publish, name="post_publish"),
    path("<slug:slug>/posts/<str:post_id>/images/", posts.post_image, name="post_image"),
    path("<slug:slug>/posts/<str:post_id>/tiers/", memberships.post_tiers, name="post_tiers"),
    path("<slug:slug>/tips/", posts.tips, name="tips"),
    path("<slug:slug>/memberships/", memberships.memberships, name="memberships"),
    path("<slug:slug>/memberships/tiers/new/", memberships.tier_new, name="tier_new"),
    path("<slug:slug>/memberships/tiers/<str:tier_id>/", memberships.tier_edit, name="tier"),
    path("<slug:slug>/memberships/tiers/<str:tier_id>/archive/", memberships.tier_archive, name="tier_archive"),
    path("<slug:slug>/memberships/members/", memberships.members, name="members"),
    path("<slug:slug>/memberships/members/new/", memberships.member_new, name="member_new"),
    path("<slug:slug>/memberships/members/<str:subscription_id>/", memberships.member, name="member"),
    path("<slug:slug>/memberships/members/<str:subscription_id>/cancel/", memberships.member_cancel, name="member_cancel"),
    path("<slug:slug>/orders/", views.orders, name="orders"),
    path("<slug:slug>/orders/<str:order_id>/", views.order_detail, name="order"),
    path("<slug:slug>/api-keys/", views.api_keys, name="api_keys"),
    path("<slug:slug>/api-keys/<str:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("<slug:slug>/payments/", payments.payment_settings, name="payments"),
    path("<slug:slug>/payments/remove-stripe/", payments.payment_settings_remove_stripe, name="payments_remove_stripe"),
    path("<slug:slug>/payments/remove-lightning/", payments.payment_settings_remove_lightning, name="payments_remove_lightning"),
    path("<slug:slug>/webhooks/", webhooks.webhook_endpoints, name="webhooks"),
    path("<slug:slug>/webhooks/<str:endpoint_id>/", webhooks.webhook_endpoint, name="webhook_endpoint"),
    path("<slug:slug>/webhooks/<str:endpoint_id>/<str:action>/", webhooks.webhook_endpoint_action, name="webhook_endpoint_action"),
    path("<slug:slug>/webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver/", webhooks.webhook_delivery_redeliver,
         name="webhook_redeliver"),
]

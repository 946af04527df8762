from django.urls import path

from . import apis

urlpatterns = [
    path("subscriptions/", apis.SubscriptionsApi.as_view(), name="subscriptions"),
    path("subscriptions/<uuid:subscription_id>/", apis.SubscriptionDetailApi.as_view(), name="subscription"),
    path("subscriptions/<uuid:subscription_id>/test/", apis.SubscriptionTestApi.as_view(), name="subscription-test"),
    path("subscriptions/<uuid:subscription_id>/replay/", apis.SubscriptionReplayApi.as_view(),
         name="subscription-replay"),
    path("subscriptions/<uuid:subscription_id>/deliveries/", apis.SubscriptionDeliveriesApi.as_view(),
         name="subscription-deliveries"),
]

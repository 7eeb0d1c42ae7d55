from django.urls import path

from wui.api import pages

urlpatterns = [
    path("", pages.api_keys, name="api_keys"),
    path("<int:pk>/revoke", pages.revoke, name="api_key_revoke"),
]

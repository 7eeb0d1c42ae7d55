from django.urls import path

from nodes import network_views

urlpatterns = [
    path("", network_views.network_setup, name="network_setup"),
]

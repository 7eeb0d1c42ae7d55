from django.urls import path

from cluster import network

urlpatterns = [
    path("", network.network_setup, name="network_setup"),
    path("<int:index>/", network.network_interface, name="network_interface"),
    path("<int:index>/<str:action>", network.network_change, name="network_change"),
]

from django.urls import path

from cluster.network import views

urlpatterns = [
    path("", views.network_setup, name="network_setup"),
    path("<int:index>/", views.network_interface, name="network_interface"),
    path("<int:index>/<str:action>", views.network_change, name="network_change"),
]

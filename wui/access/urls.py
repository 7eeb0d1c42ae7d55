"""The LoadMaster-compatible API: /access/<command> (XML) and /accessv2 (JSON)."""

from django.urls import path

from wui.access import views

urlpatterns = [
    path("access/<path:command>", views.access, name="access"),
    path("access", views.access, {"command": ""}, name="access_root"),
    path("access/", views.access, {"command": ""}),
    path("accessv2", views.accessv2, name="accessv2"),
]

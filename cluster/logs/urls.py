from django.urls import path

from cluster.logs import views

urlpatterns = [
    path("", views.system_logs, name="system_logs"),
    path("download", views.system_logs_download, name="system_logs_download"),
]

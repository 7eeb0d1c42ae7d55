"""The shared address's cluster pages, one include per capability; wui/urls.py includes this at the root."""

from django.urls import include, path

urlpatterns = [
    path("", include("cluster.membership.urls")),
    path("cluster-control/history/", include("cluster.configuration.urls")),
    path("virtual-services/", include("cluster.virtual_services.urls")),
    path("network-setup/", include("cluster.network.urls")),
    path("system-logs/", include("cluster.logs.urls")),
    path("backup-restore/", include("cluster.backup.urls")),
    path("certificates/wui/", include("cluster.certificates.urls")),
]

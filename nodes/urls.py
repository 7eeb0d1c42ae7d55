"""URLs of a unit's own (node-local) WUI."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from cluster.membership import views as cluster_views
from cluster.virtual_services import urls as vs_urls
from nodes import standalone, views
from wui import views as wui_views

urlpatterns = [
    path("", views.home, name="home"),
    path("health", wui_views.health, name="health"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("ha-clustering/", cluster_views.ha_clustering, name="ha_clustering"),
    path("cluster-control/", views.cluster_control, name="cluster_control"),
    path("cluster-control/create", views.create_cluster, name="create_cluster"),
    path("cluster-control/shared-answers", views.shared_answers, name="shared_answers"),
    path("cluster-control/add-to-cluster", views.add_to_cluster, name="add_to_cluster"),
    path("cluster-control/cancel-join", views.cancel_join, name="cancel_join"),
    path("cluster/join", views.join, name="join"),
    path("reboot/", views.reboot, name="reboot"),
    path("system-logs/", views.system_logs, name="system_logs"),
    path("network-setup/", include("nodes.network_urls")),
    path("backup-restore/", views.backup_restore, name="backup_restore"),
    path("backup-restore/saved/<str:name>", views.saved_backup, name="saved_backup"),
    # The shared WUI's own Virtual Services views, so that a standalone unit has the same pages and rules.
    path(
        "virtual-services/",
        include(
            [path(str(p.pattern), standalone.standalone_only(p.callback), name=p.name) for p in vs_urls.urlpatterns]
        ),
    ),
    path("update-software/", standalone.update_software, name="update_software"),
    # The LoadMaster-compatible API for the unit's own commands (a string: the node WUI does not import wui's).
    path("", include("wui.access.urls")),
    path("certificates/wui/", include("cluster.certificates.urls")),  # this unit's own certificate
]
urlpatterns += [
    path(f"{name.replace('_', '-')}/", views.not_built, {"page": name}, name=name) for name in views.PLANNED
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from cluster import backup_views, history, logs
from cluster import views as cluster_views
from wui import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("ha-clustering/", cluster_views.ha_clustering, name="ha_clustering"),
    path("cluster-control/", cluster_views.cluster_control, name="cluster_control"),
    path("cluster-control/add", cluster_views.add_node, name="add_node"),
    path("cluster-control/node/<int:pk>/<str:action>", cluster_views.node_action, name="node_action"),
    path("cluster-control/update/<str:action>", cluster_views.rollout_action, name="rollout_action"),
    path("cluster-control/parameter/<str:field>", cluster_views.set_parameter, name="set_parameter"),
    path("cluster-control/history/", history.history, name="config_history"),
    path("cluster-control/history/diff", history.diff, name="config_diff"),
    path("cluster-control/history/<int:number>/rollback", history.rollback, name="config_rollback"),
    path("virtual-services/", include("cluster.vs_urls")),
    path("network-setup/", include("cluster.network_urls")),
    path("update-software/", include("firmware.urls")),
    path("system-logs/", logs.system_logs, name="system_logs"),
    path("system-logs/download", logs.system_logs_download, name="system_logs_download"),
    path("backup-restore/", backup_views.backup_restore, name="backup_restore"),
    path("backup-restore/saved/<str:name>", backup_views.saved_backup, name="saved_backup"),
]

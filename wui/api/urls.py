"""/api/v1/: the REST API, its OpenAPI schema and its documentation page."""

from django.urls import path, re_path

from wui.api import docs, views

urlpatterns = [
    path("cluster", views.ClusterView.as_view(), name="api_cluster"),
    path("nodes", views.NodeList.as_view(), name="api_nodes"),
    path("nodes/<int:number>", views.NodeDetail.as_view(), name="api_node"),
    path("nodes/<int:number>/enable", views.NodeEnable.as_view(), name="api_node_enable"),
    path("nodes/<int:number>/disable", views.NodeDisable.as_view(), name="api_node_disable"),
    path("nodes/<int:number>/resync", views.NodeResync.as_view(), name="api_node_resync"),
    path("nodes/<int:number>/reboot", views.NodeReboot.as_view(), name="api_node_reboot"),
    re_path(r"^operations/(?P<op_id>[a-z-]+-[0-9]+)$", views.OperationView.as_view(), name="api_operation"),
    path("virtual-services", views.VirtualServiceList.as_view(), name="api_virtual_services"),
    path("virtual-services/<int:pk>", views.VirtualServiceDetail.as_view(), name="api_virtual_service"),
    path("virtual-services/<int:pk>/real-servers", views.RealServerList.as_view(), name="api_real_servers"),
    path(
        "virtual-services/<int:pk>/real-servers/<int:rs_pk>", views.RealServerDetail.as_view(), name="api_real_server"
    ),
    path("network/interfaces", views.InterfaceList.as_view(), name="api_interfaces"),
    path("network/interfaces/<str:name>", views.InterfaceDetail.as_view(), name="api_interface"),
    path("configuration/generations", views.GenerationList.as_view(), name="api_generations"),
    path("configuration/generations/<int:number>", views.GenerationDetail.as_view(), name="api_generation"),
    path("configuration/generations/<int:number>/diff", views.GenerationDiff.as_view(), name="api_generation_diff"),
    path(
        "configuration/generations/<int:number>/rollback",
        views.GenerationRollback.as_view(),
        name="api_generation_rollback",
    ),
    path("software", views.SoftwareView.as_view(), name="api_software"),
    path("software/install", views.SoftwareInstall.as_view(), name="api_software_install"),
    path("software/rolling-reboot", views.RollingReboot.as_view(), name="api_rolling_reboot"),
    path("software/resume", views.RolloutResume.as_view(), name="api_rollout_resume"),
    path("software/cancel", views.RolloutCancel.as_view(), name="api_rollout_cancel"),
    path("backup", views.BackupView.as_view(), name="api_backup"),
    path("restore", views.RestoreView.as_view(), name="api_restore"),
    path("logs/system", views.SystemLog.as_view(), name="api_log_system"),
    path("logs/warning", views.WarningLog.as_view(), name="api_log_warning"),
    path("schema", docs.Schema.as_view(), name="api_schema"),
    path("docs", docs.documentation, name="api_docs"),
]


urlpatterns.append(re_path(r"^(?P<rest>.*)$", views.NotFound.as_view()))

from django.urls import path

from cluster.membership import views

urlpatterns = [
    path("", views.home, name="home"),
    path("ha-clustering/", views.ha_clustering, name="ha_clustering"),
    path("cluster-control/", views.cluster_control, name="cluster_control"),
    path("cluster-control/add", views.add_node, name="add_node"),
    path("cluster-control/node/<int:pk>/<str:action>", views.node_action, name="node_action"),
    path("cluster-control/update/<str:action>", views.rollout_action, name="rollout_action"),
    path("cluster-control/parameter/<str:field>", views.set_parameter, name="set_parameter"),
]

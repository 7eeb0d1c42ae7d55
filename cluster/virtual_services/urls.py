from django.urls import path

from cluster.virtual_services import views

urlpatterns = [
    path("", views.service_list, name="virtual_services"),
    path("add", views.service_add, name="virtual_service_add"),
    path("<int:pk>/", views.service_edit, name="virtual_service_edit"),
    path("<int:pk>/delete", views.service_delete, name="virtual_service_delete"),
    path("<int:pk>/real-servers/add", views.real_server_add, name="real_server_add"),
    path("<int:pk>/real-servers/<int:rs_pk>/", views.real_server_edit, name="real_server_edit"),
    path("<int:pk>/real-servers/<int:rs_pk>/delete", views.real_server_delete, name="real_server_delete"),
]

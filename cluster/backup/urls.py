from django.urls import path

from cluster.backup import views

urlpatterns = [
    path("", views.backup_restore, name="backup_restore"),
    path("saved/<str:name>", views.saved_backup, name="saved_backup"),
]

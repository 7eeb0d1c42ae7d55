from django.urls import path

from cluster.configuration import views

urlpatterns = [
    path("", views.history, name="config_history"),
    path("diff", views.diff, name="config_diff"),
    path("<int:number>/rollback", views.rollback, name="config_rollback"),
]

from django.urls import path

from cluster.certificates import views

urlpatterns = [path("", views.wui_certificate, name="wui_certificate")]

"""Update Software; wui/urls.py includes this at update-software/."""

from django.urls import path

from firmware import views

urlpatterns = [
    path("", views.update_software, name="update_software"),
]

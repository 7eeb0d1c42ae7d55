"""URLs of a unit's own (node-local) WUI."""

from django.contrib.auth import views as auth_views
from django.urls import path

from nodes import views
from wui import views as wui_views

urlpatterns = [
    path("", views.home, name="home"),
    path("health", wui_views.health, name="health"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
urlpatterns += [
    path(f"{name.replace('_', '-')}/", views.not_built, {"page": name}, name=name) for name in views.PLANNED
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from wui import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("wui.api.urls")),
    path("api-keys/", include("wui.api.page_urls")),
    path("", include("wui.access.urls")),
    path("", include("cluster.urls")),
    path("update-software/", include("firmware.urls")),
]

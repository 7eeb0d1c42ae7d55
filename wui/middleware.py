"""Login required, also for the requests htmx makes on its own (a table refreshing itself)."""

from urllib.parse import urlsplit

from django.contrib.auth import middleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.shortcuts import resolve_url

# The APIs answer 401 themselves (a script cannot follow a redirect to a login form); their pages
# for people (the interactive documentation) ask for the login on their own.
API_PATHS = ("/api/", "/access")


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    """An htmx request whose session has ended sends the whole window to the login page.

    Followed as a plain redirect, the login page would be swapped into the page that asked,
    and its autofocus would take the keystrokes typed into the page around it.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith(API_PATHS):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request, view_func):
        if request.headers.get("HX-Request") != "true":
            return super().handle_no_permission(request, view_func)
        # After logging in, back to the page the operator was on, not to the fragment it asked for.
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = (page.path + (f"?{page.query}" if page.query else "")) if page.path else request.get_full_path()
        login = redirect_to_login(
            back, resolve_url(self.get_login_url(view_func)), self.get_redirect_field_name(view_func)
        )
        response = HttpResponse(status=204)
        response["HX-Redirect"] = login["Location"]
        return response

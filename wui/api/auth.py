"""How a REST API request proves who it is: an API key, or the browser's session (with CSRF)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from wui.api import keys


def key_from_headers(request):
    """``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.META.get("HTTP_X_API_KEY") or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = key_from_headers(request)
        if raw is None:
            return None
        key = keys.authenticate(raw, request.META.get("REMOTE_ADDR"))
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown, revoked or malformed.")
        return key.user, key

    def authenticate_header(self, request):
        # A 401 (not a 403) for a request without credentials: scripts tell "log in" from "not allowed".
        return 'Bearer realm="flotilla"'


class KeyAllows(permissions.BasePermission):
    """Logged in; a read-only key may only read."""

    message = "This API key is read-only: it may not change anything."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        key = request.auth if isinstance(request.auth, keys.ApiKey) else None
        return key is None or not key.read_only or request.method in permissions.SAFE_METHODS


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema names the key: a bearer token."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key made under System Administration > API Keys.",
        }

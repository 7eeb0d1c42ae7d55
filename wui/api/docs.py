"""The published OpenAPI 3 schema, and the documentation page for people: behind the WUI login, no CDN.

The page is drawn on the server from the same schema the API publishes; its Send buttons try a call
with the operator's own session (and CSRF token), from a small script of ours.
"""

import json

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView

from wui.api import errors

METHODS = ("get", "post", "put", "patch", "delete")


class Schema(SpectacularAPIView):
    def get_exception_handler(self):
        return errors.handle


def documentation(request):
    """The APIs answer 401 themselves, so this page (under /api/) asks for the login on its own."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return render(request, "wui/api_docs.html", {"title": "REST API", "groups": _groups(schema)})


def _groups(schema):
    """The operations by the first part of their path, in the order the schema lists them."""
    groups = {}
    for path, item in schema.get("paths", {}).items():
        section = path.removeprefix("/api/v1/").split("/")[0]
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            groups.setdefault(section, []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "anchor": op.get("operationId", f"{method}-{path}"),
                    "description": op.get("description", ""),
                    "parameters": [p for p in op.get("parameters", []) if p.get("in") != "header"],
                    "body": _body(schema, op),
                    "responses": sorted(op.get("responses", {})),
                    "example": _example(schema, op),
                }
            )
    return groups


def _resolve(schema, node):
    while isinstance(node, dict) and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node or {}


def _body(schema, op):
    content = op.get("requestBody", {}).get("content", {})
    media = next(iter(content), None)
    if media is None:
        return None
    body = _resolve(schema, content[media].get("schema"))
    required = set(body.get("required", []))
    return {
        "media": media,
        "fields": [
            {"name": name, "type": _resolve(schema, spec).get("type", "object"), "required": name in required}
            for name, spec in body.get("properties", {}).items()
        ],
    }


def _example(schema, op):
    """A starting body for the Send form: the required fields, empty."""
    body = _body(schema, op)
    if body is None or body["media"] != "application/json":
        return ""
    blank = {"string": "", "integer": 0, "boolean": False, "array": [], "object": {}}
    return json.dumps({f["name"]: blank.get(f["type"], "") for f in body["fields"] if f["required"]}, indent=1)

"""The published OpenAPI schema, tried against the API itself (Schemathesis): no 5xx, every answer as documented.

A cluster of three nodes and two Virtual Services in the database, a full API key, a few examples per
operation. No operation reaches a node: the worker's tasks go out only when a transaction commits,
and each test's transaction is rolled back.
"""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import make_cluster
from wui.api import keys
from wui.wsgi import application

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def connection_kept():
    """The WSGI app closes the database connection after each request; the test's transaction lives
    on it (Django's own test client does the same)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def key_headers(db, connection_kept, admin_user, tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    make_cluster()
    return {"Authorization": f"Bearer {keys.create(admin_user, 'schemathesis', read_only=False)[1]}"}


# The schema the API publishes (GET /api/v1/schema answers the same document; see below), called on
# the WSGI app itself.
schema = schemathesis.openapi.from_dict(json.loads(json.dumps(SchemaGenerator().get_schema(public=True))))
schema.app = application


# Derandomized: the same examples on every run, so a failure is a defect to fix, never a draw that
# passes on the next run; the examples still differ from one operation to the next.
@schema.parametrize()
@settings(
    derandomize=True,
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_operation_answers_as_its_schema_says(case, key_headers):
    case.call_and_validate(headers=key_headers, checks=CHECKS)


def test_the_schema_needs_a_login_or_a_key(admin_client):
    assert Client().get("/api/v1/schema").status_code == 401
    response = admin_client.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(SchemaGenerator().get_schema(public=True)))
    paths = response.json()["paths"]
    assert "/api/v1/nodes/{number}/enable" in paths and "/api/v1/restore" in paths
    assert response.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_the_documentation_page_is_behind_the_login_and_fetches_nothing_from_elsewhere(admin_client):
    assert Client().get("/api/v1/docs")["Location"].startswith("/login/")
    page = admin_client.get("/api/v1/docs")
    assert page.status_code == 200
    text = page.content.decode()
    assert "POST /api/v1/nodes" in text and "/api/v1/nodes/{number}/enable" in text
    # Every script and style sheet is our own: nothing from a CDN.
    assert "https://" not in text and "//cdn" not in text

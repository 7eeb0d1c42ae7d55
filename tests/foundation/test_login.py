"""Login everywhere, CSRF, lockout: walk every URL of both WUIs, those with arguments too."""

import re

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from cluster import events
from cluster.backup import rules as backup
from cluster.models import ConfigGeneration, Event, Interface, Node, RealServer, Rollout, VirtualService
from tests.helpers import ADMIN_PASSWORD, make_cluster
from wui.api import keys
from wui.middleware import API_PATHS

# A unit's health answer carries no data; its join endpoint is called by the cluster's
# control plane and checks the one-time join code itself (tests/cluster/test_pages.py).
OPEN_URLS = {"health", "join"}
PARAMETER = re.compile(r"<(?:(\w+):)?(\w+)>|\(\?P<(\w+)>([^)]*)\)")


def url_patterns(urlconf):
    """(name, route) of every URL pattern of a URL conf, the admin's own included."""

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield p.name, prefix + str(p.pattern)

    return [(name, route) for name, route in walk(get_resolver(urlconf).url_patterns) if name not in OPEN_URLS]


@pytest.fixture
def rows(admin_user, settings, tmp_path):
    """A real row behind every argument a URL takes: what a view would show if it let a stranger in."""
    settings.VAR_DIR = tmp_path / "var"
    settings.BACKUP_KEY_FILE = settings.VAR_DIR / "backup_key"
    make_cluster()  # nodes, interfaces, Virtual Services with real servers, a generation
    node = Node.objects.order_by("number").last()
    events.record("Walked", node=node)
    Group.objects.create(name="operators")
    Rollout.objects.create(version="1.1.0", created_by=admin_user)
    # A right then a wrong password (a success clears the attempts): the lock-out's access,
    # failure and attempt rows.
    Client().post(reverse("login"), {"username": "admin", "password": ADMIN_PASSWORD})
    Client().post(reverse("login"), {"username": "admin", "password": "wrong"})
    # (this project keeps no failure log, but the admin still offers its pages)
    AccessFailureLog.objects.create(username="admin", ip_address="127.0.0.1", user_agent="", path_info="/login/")
    saved = backup.save_scheduled()
    keys.create(admin_user, "walked")
    virtual_service = VirtualService.objects.filter(real_servers__isnull=False).first()
    found = {
        "node": node,
        "generation": ConfigGeneration.objects.first(),
        "interface": Interface.objects.order_by("index").last(),
        "virtual_service": virtual_service,
        "real_server": RealServer.objects.filter(virtual_service=virtual_service).first(),
        "saved_backup": saved.name,
        "user": admin_user,
    }
    for model in (Event, AccessAttempt, AccessFailureLog, AccessLog, LogEntry, Rollout, Group):
        assert model.objects.exists(), f"no {model.__name__} row to walk to"
    return found


def argument(route, name, rows):
    """The value of one URL argument, from a real row (or a real choice of the view)."""
    admin_object = re.match(r"admin/(\w+)/(\w+)/<path:object_id>", route)
    values = {
        "object_id": lambda: (
            apps.get_model(*admin_object.groups()).objects.first().pk if admin_object else rows["node"].pk
        ),
        "content_type_id": lambda: ContentType.objects.get_for_model(Node).pk,
        "id": lambda: rows["user"].pk,  # the admin's password change of a user
        "app_label": lambda: "cluster",
        "url": lambda: "cluster/no-such-page/",  # the admin's catch-all
        "number": lambda: rows["generation"].number,
        "index": lambda: rows["interface"].index,
        "rs_pk": lambda: rows["real_server"].pk,
        "name": lambda: rows["saved_backup"],
        "field": lambda: "drain_time",
        "op_id": lambda: "join-1",
        "rest": lambda: "no-such-endpoint",
        "command": lambda: "cluster/status",  # /access/<command>
    }
    if name == "pk":
        return (rows["virtual_service"] if route.startswith("virtual-services/") else rows["node"]).pk
    if name == "action":
        return {"cluster-control/node/": "disable", "cluster-control/update/": "cancel"}.get(
            route.split("<")[0], "options"
        )
    assert name in values, f"no real value for the argument {name!r} of {route!r}: say where one comes from"
    return values[name]()


def concrete(route, rows):
    """The URL of a route with each argument filled from real rows."""

    def fill(match):
        _, name, regex_name, _ = match.groups()
        return str(argument(route, name or regex_name, rows))

    return "/" + PARAMETER.sub(fill, route).replace("^", "").replace("$", "").replace("\\Z", "")


def _assert_login_required(client, url):
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code in (301, 302), f"{method.upper()} {url} answered {response.status_code}"
        assert "/login/" in response["Location"], f"{method.upper()} {url} went to {response['Location']}"


def _assert_answers_401(client, url):
    """The APIs are for scripts: no redirect to a login form, a 401 they can act on."""
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 401, f"{method.upper()} {url} answered {response.status_code}"


def walk_every_url(client, urlconf, rows):
    """Visit every pattern of the URL conf; fails on a pattern it could not reach."""
    patterns = url_patterns(urlconf)
    visited = set()
    for name, route in patterns:
        url = concrete(route, rows)
        match = resolve(url, urlconf)
        assert match.route.replace("^", "") == route.replace("^", ""), (
            f"{url} (built for {route!r}) reached {match.route!r} instead"
        )
        if name == "login":
            assert client.get(url).status_code == 200
        elif url.startswith(API_PATHS) and name != "api_docs":  # the REST API's page for people asks for the login
            _assert_answers_401(client, url)
        else:
            _assert_login_required(client, url)
        visited.add(route)
    skipped = {route for _, route in patterns} - visited
    assert not skipped, f"URL patterns not walked: {sorted(skipped)}"
    return visited


@pytest.mark.django_db
def test_every_shared_wui_url_needs_a_login(client, rows):
    visited = walk_every_url(client, "wui.urls", rows)
    assert any("<" in route for route in visited)  # the ones with arguments were walked too


@pytest.mark.django_db
def test_every_node_wui_url_needs_a_login(client, rows, tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    with override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node"):
        visited = walk_every_url(client, "nodes.urls", rows)
    assert any("<" in route for route in visited)


@pytest.mark.django_db
def test_health_answers_without_login(client):
    assert client.get("/health").json() == {"ok": True}


@pytest.mark.django_db
def test_a_login_without_csrf_token_is_refused(admin_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "admin", "password": "correct-horse-battery"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_right_password_logs_in_and_shows_the_menu(client, admin_user):
    response = client.post(reverse("login"), {"username": "admin", "password": "correct-horse-battery"}, follow=True)
    page = response.content.decode()
    for label in (
        "Virtual Services",
        "Network Setup",
        "HA and Clustering",
        "Cluster Control",
        "Backup/Restore",
        "Update Software",
        "System Log Files",
    ):
        assert label in page


@pytest.mark.django_db
def test_repeated_wrong_passwords_lock_the_user_out(client, admin_user):
    for _ in range(5):
        response = client.post(reverse("login"), {"username": "admin", "password": "wrong"})
        assert "_auth_user_id" not in client.session
    response = client.post(reverse("login"), {"username": "admin", "password": "correct-horse-battery"})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_refused_login_marks_both_fields_and_says_why(client):
    page = client.post(reverse("login"), {"username": "nobody", "password": "wrong"}).content.decode()
    assert 'id="login-error"' in page
    assert page.count('aria-invalid="true" aria-describedby="login-error"') == 2

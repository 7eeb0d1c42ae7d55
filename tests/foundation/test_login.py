"""Login everywhere, CSRF, lockout: walk every URL of both WUIs."""

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# A unit's health answer carries no data; its join endpoint is called by the cluster's
# control plane and checks the one-time join code itself (tests/cluster/test_pages.py).
OPEN_URLS = {"health", "join"}


def concrete_urls(urlconf):
    """Every URL of a URL conf that takes no arguments (the admin's own included)."""

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and not p.pattern.regex.groups and "<" not in str(p.pattern):
                route = prefix + str(p.pattern)
                yield p.name, "/" + route.lstrip("^").rstrip("$").replace("\\Z", "").replace("^", "")

    return [(name, url) for name, url in walk(get_resolver(urlconf).url_patterns) if name not in OPEN_URLS]


def _assert_login_required(client, url):
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code in (301, 302), f"{method.upper()} {url} answered {response.status_code}"
        assert "/login/" in response["Location"], f"{method.upper()} {url} went to {response['Location']}"


@pytest.mark.django_db
@pytest.mark.parametrize("name,url", concrete_urls("wui.urls"))
def test_every_shared_wui_url_needs_a_login(client, name, url):
    if name in ("login",):
        assert client.get(url).status_code == 200
        return
    _assert_login_required(client, url)


@pytest.mark.django_db
@pytest.mark.parametrize("name,url", concrete_urls("nodes.urls"))
def test_every_node_wui_url_needs_a_login(client, name, url, tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    with override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node"):
        if name == "login":
            assert client.get(url).status_code == 200
            return
        _assert_login_required(client, url)


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

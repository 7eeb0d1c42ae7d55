"""API keys: made in the WUI and shown once, kept as a hash, last use recorded, read-only or full, revoked at once."""

import re

import pytest
from rest_framework.test import APIClient

from cluster.models import Cluster, Event
from wui.api import keys

pytestmark = pytest.mark.usefixtures("cluster")


def made_in_the_wui(admin_client, name, access):
    page = admin_client.post("/api-keys/", {"name": name, "access": access})
    assert page.status_code == 200
    raw = re.search(r'value="(flt_[0-9a-f]{8}_[^"]+)"', page.content.decode()).group(1)
    return raw, page


def bearer(raw):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_key_is_shown_once_kept_as_a_hash_used_and_refused_at_once_when_revoked(admin_client):
    raw, page = made_in_the_wui(admin_client, "nightly", "full")
    key = keys.ApiKey.objects.get(name="nightly")
    assert not key.read_only and key.sha256 != raw and raw not in str(keys.ApiKey.objects.values().get())
    # Shown on the page that made it, never again.
    assert raw not in admin_client.get("/api-keys/").content.decode()
    assert Event.objects.filter(message__startswith=f"API key nightly ({key.prefix}, full) created by admin").exists()

    client = bearer(raw)
    assert client.get("/api/v1/cluster", REMOTE_ADDR="127.0.0.7").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None and key.last_used_from == "127.0.0.7"
    assert "from 127.0.0.7" in admin_client.get("/api-keys/").content.decode()
    assert client.patch("/api/v1/cluster", {"drain_time": 12}, format="json").status_code == 200

    revoked = admin_client.post(f"/api-keys/{key.pk}/revoke")
    assert revoked.status_code == 302
    refused = client.get("/api/v1/cluster")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "The API key is unknown, revoked or malformed."}
    assert client.patch("/api/v1/cluster", {"drain_time": 13}, format="json").status_code == 401
    assert Cluster.get().drain_time == 12
    assert "Revoked" in admin_client.get("/api-keys/").content.decode()


def test_a_read_only_key_reads_and_may_not_write(admin_client):
    raw, _ = made_in_the_wui(admin_client, "monitoring", "read-only")
    client = bearer(raw)
    assert client.get("/api/v1/nodes").status_code == 200
    refused = client.post("/api/v1/nodes/2/disable")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "This API key is read-only: it may not change anything."}
    # The X-API-Key header works too.
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=raw)
    assert other.get("/api/v1/cluster").status_code == 200


def test_no_or_a_made_up_key_is_401_and_the_browser_needs_its_csrf_token(admin_user):
    anonymous = APIClient()
    response = anonymous.get("/api/v1/cluster")
    assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer realm="flotilla"'
    assert bearer("flt_00000000_nothing").get("/api/v1/cluster").status_code == 401

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.get("/api/v1/cluster").status_code == 200
    refused = browser.patch("/api/v1/cluster", {"drain_time": 14}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_the_wui_page_refuses_a_key_without_a_name_and_keeps_others_keys_apart(admin_client, django_user_model):
    page = admin_client.post("/api-keys/", {"name": "", "access": "full"})
    assert page.status_code == 400 and "Name: say what the key is for" in page.content.decode()
    assert not keys.ApiKey.objects.exists()

    operator = django_user_model.objects.create_user("operator", password="x")
    mine, _ = keys.create(operator, "operator's")
    admins, _ = keys.create(django_user_model.objects.get(username="admin"), "admin's")
    client = APIClient()
    client.force_login(operator)
    listed = client.get("/api-keys/").content.decode()
    assert "operator&#x27;s" in listed and "admin&#x27;s" not in listed
    assert client.post(f"/api-keys/{admins.pk}/revoke").status_code == 404
    admins.refresh_from_db()
    assert admins.revoked_at is None


def test_auditors_see_keys_in_the_admin_read_only_and_never_the_hash(admin_client):
    key, _ = keys.create(keys.ApiKey._meta.get_field("user").related_model.objects.get(username="admin"), "audit")
    listing = admin_client.get("/admin/wui/apikey/")
    assert listing.status_code == 200 and "audit" in listing.content.decode()
    detail = admin_client.get(f"/admin/wui/apikey/{key.pk}/change/").content.decode()
    assert key.sha256 not in detail
    assert admin_client.post(f"/admin/wui/apikey/{key.pk}/delete/").status_code == 403

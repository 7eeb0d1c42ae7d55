"""A unit's own WUI: Backup/Restore while standalone (its own configuration), not offered while in a cluster."""

import json

import pytest
from django.urls import reverse

from nodes import agent
from tests.helpers import download, make_standalone, rendered, text_of, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def unit_home(settings, tmp_path, monkeypatch):
    settings.ROOT_URLCONF, settings.FLOTILLA_ROLE = "nodes.urls", "node"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("NODE_HOME", str(home))
    return home


def menu_has_backup(html):
    return 'href="/backup-restore/"' in html


@pytest.mark.parametrize("mode", ["member", "admin", "joining"])
def test_not_offered_while_the_unit_is_in_a_cluster(admin_client, unit_home, mode):
    agent.write_json("membership.json", {"mode": mode, "shared_address": "10.0.0.90"})
    assert not menu_has_backup(text_of(admin_client.get(reverse("home"))))
    for response in (admin_client.get("/backup-restore/"), admin_client.post("/backup-restore/", {"action": "backup"})):
        assert response.status_code == 403
        assert "Backup/Restore is not offered here: this unit is in a cluster" in text_of(response)
        assert "https://10.0.0.90:8000/backup-restore/" in text_of(response)
        assert response["Content-Type"].startswith("text/html")  # no backup file handed out


def test_a_standalone_unit_backs_up_and_restores_its_own_configuration(
    admin_client, unit_home, django_capture_on_commit_callbacks
):
    assert menu_has_backup(text_of(admin_client.get(reverse("home"))))
    make_standalone()
    own = {"interfaces": {"eth0": {"address": "10.0.0.5/24", "use_for_default_gateway": True}}}
    agent.write_json("local_network.json", own)
    before = rendered()
    data = download(admin_client)

    agent.write_json("local_network.json", {"interfaces": {"eth0": {"address": "10.0.0.6/24"}}})
    from cluster.models import VirtualService

    VirtualService.objects.filter(name="legacy").delete()
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, data)

    assert response.status_code == 302, text_of(response)[:3000]
    assert rendered() == before
    assert json.loads((unit_home / "local_network.json").read_text()) == own
    page = text_of(admin_client.get("/backup-restore/"))
    assert "Configuration restored from the standalone backup" in page
    assert "rebooted" not in page

"""A standalone unit's backup into a cluster, and the reverse: every incompatible setting, Refuse or convert."""

import pytest
from django.urls import reverse

from cluster.backup import rules as backup
from cluster.models import Cluster, Node, VirtualService
from cluster.virtual_services import rules as virtual_services
from tests.helpers import (
    BACKUP_SHARED,
    choose,
    download,
    make_cluster,
    make_standalone,
    restored_events,
    state,
    text_of,
    upload,
    wipe,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def standalone_backup(admin_client):
    make_standalone()
    data = download(admin_client)
    wipe()
    make_cluster()
    return data


@pytest.fixture
def cluster_backup(admin_client):
    make_cluster()
    data = download(admin_client)
    wipe()
    make_standalone()
    return data


def report_rows(html):
    import re

    table = html.split('aria-label="Incompatible settings"')[1].split("</table>")[0]
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]


def test_a_standalone_backup_into_a_cluster_lists_every_incompatible_setting(admin_client, standalone_backup):
    before = state()
    response = upload(admin_client, standalone_backup)

    assert response.status_code == 200
    rows = report_rows(text_of(response))
    legacy = "Virtual Service legacy (10.0.0.50:25)"
    assert rows == [
        ["HA and Clustering: HA Mode", "High Availability (HA) mode cannot be used in a cluster",
         "not restored: the cluster stays in Clustering mode"],
        [legacy, "Layer: in a cluster all Virtual Services must operate at Layer 7", "Layer 4 to Layer 7"],
        [legacy, "Transparency cannot be enabled in a cluster", "Transparency turned off"],
        [legacy, "Subnet Originating Requests must be enabled in a cluster", "Subnet Originating Requests turned on"],
        [legacy, rows[4][1], "real server 172.16.0.9:25 left out"],
        ["Virtual Service side (10.0.0.51:80)",
         "Interface eth1: Virtual Services are only possible on the primary interface (eth0) in a cluster",
         "moved from eth1 to the primary interface eth0"],
    ]  # fmt: skip
    assert rows[4][1].startswith("Real server 172.16.0.9 is not local")
    assert "Restore with these settings converted" in text_of(response) and "Refuse" in text_of(response)
    assert state() == before  # a report changes nothing


def test_restore_with_the_settings_converted(admin_client, standalone_backup):
    nodes = list(Node.objects.values_list("number", "address", "host_key"))
    response = choose(admin_client, upload(admin_client, standalone_backup), "convert")

    assert response.status_code == 302, text_of(response)[:3000]
    legacy = VirtualService.objects.get(name="legacy")
    assert (legacy.layer, legacy.transparency, legacy.subnet_originating) == (7, False, True)
    assert [rs.address for rs in legacy.real_servers.all()] == ["10.0.0.20"]
    assert VirtualService.objects.get(name="side").interface == "eth0"
    assert VirtualService.objects.filter(name="fine").exists()
    assert virtual_services.incompatible_settings() == []
    cluster = Cluster.get()
    assert (cluster.mode, cluster.shared_address, cluster.virtual_id) == ("clustering", BACKUP_SHARED, 7)
    assert list(Node.objects.values_list("number", "address", "host_key")) == nodes  # the cluster keeps its nodes
    assert restored_events() == 1
    assert "6 setting(s) converted" in text_of(admin_client.get(reverse("backup_restore")))
    assert not list((backup.backup_dir() / "pending").iterdir())


def test_refuse_changes_nothing(admin_client, standalone_backup):
    before = state()
    response = choose(admin_client, upload(admin_client, standalone_backup), "refuse")
    assert response.status_code == 302
    assert state() == before and restored_events() == 0
    assert "Restore refused: nothing was changed" in text_of(admin_client.get(reverse("backup_restore")))
    assert not list((backup.backup_dir() / "pending").iterdir())


def test_a_report_that_no_longer_holds_is_shown_again(admin_client, standalone_backup):
    shown = upload(admin_client, standalone_backup)
    VirtualService.objects.create(name="other", address="10.0.0.53", port=80)  # not the issue; nodes are:
    Node.objects.filter(is_admin=True).update(facts={"interfaces": [{"name": "eth1", "addresses": ["10.9.0.1/24"]}]})
    before = state()
    response = choose(admin_client, shown, "convert")
    assert response.status_code == 409
    assert "changed since the report was shown" in text_of(response)
    assert state() == before


def test_a_restore_without_the_operators_choice_is_refused(standalone_backup, tmp_path):
    path = tmp_path / "b.tar.gz"
    path.write_bytes(standalone_backup)
    before = state()
    with pytest.raises(backup.BackupError, match="cannot take as they are"):
        backup.restore(backup.read(path))
    assert state() == before


def test_a_cluster_backup_into_a_standalone_unit_lists_the_cluster_settings(admin_client, cluster_backup):
    before = state()
    response = upload(admin_client, cluster_backup)
    rows = report_rows(text_of(response))
    assert [r[0] for r in rows] == [
        "Cluster membership: shared address 10.0.0.90, 3 node(s) with their pinned host keys",
        "Cluster Network Setup (eth0, eth1): the nodes&#x27; addresses and the Use for Cluster checks/updates choices",
    ]
    assert [r[2] for r in rows] == [
        "not restored: this unit stays standalone",
        "not restored: this unit keeps its own Network Setup",
    ]
    assert state() == before

    assert choose(admin_client, response, "convert").status_code == 302
    assert sorted(VirtualService.objects.values_list("name", flat=True)) == ["api", "web"]
    assert Node.objects.count() == 0
    cluster = Cluster.get()
    assert (cluster.mode, cluster.shared_address) == ("ha", None)

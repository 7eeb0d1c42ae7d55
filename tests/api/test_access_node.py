"""/access on a unit's own address (its own WUI, node role): create a cluster, wait to join one, its status.

The unit is the agent library on a state directory of its own, as its WUI uses it; its reboot is the
request the machine's init system would act on.
"""

import base64
import json
import urllib.error
import urllib.request
from xml.etree import ElementTree

import pytest
from django.test import Client

from cluster import ssh
from cluster.models import Cluster, Event, Node
from nodes import agent
from nodes.agent import dataplane
from tests.harness import https_context
from tests.helpers import ADMIN_PASSWORD, alive, host_key, wait_until

pytestmark = pytest.mark.django_db

BASIC = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


@pytest.fixture
def unit_home(settings, tmp_path, monkeypatch, admin_user):
    settings.ROOT_URLCONF, settings.FLOTILLA_ROLE = "nodes.urls", "node"
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "host_key.pub").write_text(host_key(5) + "\n")
    node = {
        "interfaces": [{"name": "eth0", "device": "lo", "addresses": ["10.0.0.5/24"]}],
        "host_key_file": str(tmp_path / "host_key.pub"),
        "ssh_user": "lb5",
        "ssh_port": 2222,
    }
    (home / "node.json").write_text(json.dumps(node))
    monkeypatch.setenv("NODE_HOME", str(home))
    yield home
    # An admin unit starts its HAProxy (the spreader) as a real unit does: stopped as its reboot would.
    stopped = dataplane.stop()
    wait_until(lambda: not any(alive(pid) for pid in stopped), 5)


def access(command, **params):
    response = Client().get(f"/access/{command}", params, **BASIC)
    return response.status_code, ElementTree.fromstring(response.content)  # noqa: S314 (our own answer)


def test_a_standalone_units_status(unit_home):
    status, root = access("cluster/status")
    assert (status, root.get("code")) == (200, "ok")
    assert root.findtext("Success/Data/Unit/Mode") == "standalone"
    assert root.find("Success/Data/Join") is None


def test_joincluster_makes_the_unit_wait_with_the_code_addnode_needs(unit_home):
    status, root = access("cluster/joincluster")
    assert status == 200, root.findtext("Error")
    offer = agent.join_offer()
    assert root.findtext("Success/Data/Join/Code") == offer["code"]
    assert root.findtext("Success/Data/Join/Fingerprint") == offer["fingerprint"] == ssh.fingerprint(host_key(5))
    assert "Waiting to join a cluster for 10 minutes" in root.findtext("Success/Data/Message")
    assert access("cluster/status")[1].findtext("Success/Data/Join/Code") == offer["code"]
    assert Event.objects.filter(message="Add to Cluster: waiting to join by admin from 127.0.0.1").exists()


def test_joincluster_is_refused_in_ha_mode_with_the_wuis_reason(unit_home):
    Cluster.objects.create(pk=1, mode=Cluster.Mode.HA)
    status, root = access("cluster/joincluster")
    assert (status, root.get("stat")) == (422, "422")
    assert root.findtext("Error") == "HA mode is configured on this unit: clustering is unavailable"
    assert agent.join_offer() is None


def test_create_makes_the_unit_the_admin_node_and_reboots_it(unit_home):
    for value, reason in [
        ("", "Missing parameter: SharedAddress"),
        ("10.0.0.999", "'10.0.0.999' is not an IPv4 address"),
        ("10.0.0.5", "10.0.0.5 is this unit's own address; the shared address must be a different one"),
    ]:
        status, root = access("cluster/create", SharedAddress=value)
        assert (status, root.findtext("Error")) == (422, reason)
    assert not Node.objects.exists() and not (unit_home / "reboot.request").exists()

    status, root = access("cluster/create", SharedAddress="10.0.0.90")
    assert status == 200, root.findtext("Error")
    assert root.findtext("Success/Data/SharedAddress") == "10.0.0.90"
    assert "reconnect to 10.0.0.90" in root.findtext("Success/Data/Message")
    assert agent.membership()["mode"] == "admin"
    assert (unit_home / "reboot.request").exists()
    assert ssh.cluster_public_key().split()[1] in (unit_home / ".ssh" / "authorized_keys").read_text()
    node = Node.objects.get()
    assert (node.number, node.address, node.is_admin) == (1, "10.0.0.5", True)
    assert Cluster.get().shared_address == "10.0.0.90"

    status, root = access("cluster/create", SharedAddress="10.0.0.91")
    assert (status, root.findtext("Error")) == (422, "This unit is already in a cluster")
    status, root = access("cluster/joincluster")
    assert (status, root.findtext("Error")) == (422, "this unit is already in a cluster")


def test_the_wuis_create_cluster_page_uses_the_same_rule(unit_home, admin_client):
    response = admin_client.post("/cluster-control/create", {"shared_address": "10.0.0.5"})
    assert response.status_code == 400
    assert "this unit&#x27;s own address" in response.content.decode()
    response = admin_client.post("/cluster-control/create", {"shared_address": "10.0.0.90"})
    assert response.status_code == 200 and agent.membership()["mode"] == "admin"


def test_cluster_commands_run_on_the_shared_address(unit_home):
    status, root = access("listvs")
    assert (status, root.findtext("Error")) == (
        422,
        "listvs runs on the cluster's shared address, not on a unit's own address",
    )
    status, root = access("nosuchcommand")
    assert (status, root.findtext("Error")) == (400, "Unknown command")


def test_a_real_units_own_address_answers_joincluster_with_a_code_its_join_endpoint_accepts(harness):
    """The unit's own WUI (gunicorn, node settings) serves /access: the code it answers is the one it checks."""
    unit = harness.node(2)
    unit.factory_reset(only_if_changed=True)

    def call(path, auth=BASIC["HTTP_AUTHORIZATION"], data=None):
        request = urllib.request.Request(f"{unit.wui_url}{path}", data=data, headers={"Authorization": auth})
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10, context=https_context(unit.ca_file)) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()

    wrong = "Basic " + base64.b64encode(b"admin:wrong-password").decode()
    status, body = call("/access/cluster/status", auth=wrong)
    assert status == 401 and ElementTree.fromstring(body).findtext("Error") == "Incorrect username or password"  # noqa: S314

    status, body = call("/access/cluster/joincluster")
    root = ElementTree.fromstring(body)  # noqa: S314 (the unit's own answer)
    assert status == 200, root.findtext("Error")
    code = root.findtext("Success/Data/Join/Code")
    status, body = call("/access/cluster/status")
    root = ElementTree.fromstring(body)  # noqa: S314
    assert root.findtext("Success/Data/Unit/Mode") == "standalone"
    assert root.findtext("Success/Data/Join/Code") == code
    # What cluster/addnode on the shared address does first: the unit's join endpoint checks the code.
    status, body = call("/cluster/join", data=json.dumps({"code": code, "check": True}).encode())
    assert status == 200 and json.loads(body)["host_key"] == unit.host_key_line

"""Virtual Services, real servers, network interfaces, generations and logs over the REST API."""

import pytest

from cluster.configuration import rules as config
from cluster.models import Event, Interface, RealServer, VirtualService

pytestmark = pytest.mark.usefixtures("cluster")


def test_virtual_services_are_created_changed_and_deleted_with_the_wuis_checks(api):
    listed = api.get("/api/v1/virtual-services").json()
    assert [(v["name"], v["port"], len(v["real_servers"])) for v in listed] == [("web", 80, 2), ("api", 443, 0)]

    created = api.post("/api/v1/virtual-services", {"name": "mail", "port": 8025}, format="json")
    assert created.status_code == 201, created.json()
    vs = created.json()
    # The fields not sent take the WUI form's starting values: the shared address, Layer 7, ...
    assert vs["address"] == "10.0.0.90" and vs["layer"] == 7 and vs["check_url"] == "/"

    duplicate = api.post("/api/v1/virtual-services", {"name": "again", "port": 80}, format="json")
    assert duplicate.status_code == 400
    assert duplicate.json()["errors"]["port"] == ["Port: 10.0.0.90:80 is already used by Virtual Service web"]

    # A cluster refuses what the WUI refuses, with the same reason: 409, the cluster's restriction.
    layer4 = api.patch(f"/api/v1/virtual-services/{vs['id']}", {"layer": 4}, format="json")
    assert layer4.status_code == 409
    assert layer4.json()["detail"] == "Layer: in a cluster all Virtual Services must operate at Layer 7"

    renamed = api.patch(f"/api/v1/virtual-services/{vs['id']}", {"name": "smtp"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "smtp" and renamed.json()["port"] == 8025
    assert VirtualService.objects.get(pk=vs["id"]).name == "smtp"
    assert Event.objects.filter(message__contains="changed (Service Name)").exists()

    assert api.delete(f"/api/v1/virtual-services/{vs['id']}").status_code == 204
    assert api.get(f"/api/v1/virtual-services/{vs['id']}").status_code == 404


def test_real_servers_are_added_changed_and_removed(api):
    web = VirtualService.objects.get(name="web")
    base = f"/api/v1/virtual-services/{web.pk}/real-servers"
    added = api.post(base, {"address": "10.0.0.13", "port": 8080}, format="json")
    assert added.status_code == 201, added.json()
    assert added.json()["weight"] == 1000 and added.json()["enabled"] is True

    far = api.post(base, {"address": "172.16.0.9", "port": 8080}, format="json")
    assert far.status_code == 409 and far.json()["detail"].startswith("Real server 172.16.0.9 is not local")

    rs = added.json()["id"]
    changed = api.patch(f"{base}/{rs}", {"weight": 10, "enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["weight"] == 10 and changed.json()["enabled"] is False
    bad = api.patch(f"{base}/{rs}", {"weight": 0}, format="json")
    assert bad.status_code == 400 and "Weight" in bad.json()["errors"]["weight"][0]
    assert api.delete(f"{base}/{rs}").status_code == 204
    assert not RealServer.objects.filter(pk=rs).exists()
    assert api.get(f"{base}/{rs}").status_code == 404


def test_network_interfaces_are_read_and_changed_all_or_nothing(api):
    listed = api.get("/api/v1/network/interfaces").json()
    assert [i["name"] for i in listed] == ["eth0", "eth1"]
    eth1 = api.get("/api/v1/network/interfaces/eth1").json()
    assert eth1["addresses"] == {"1": "192.168.5.1/24", "2": "192.168.5.2/24", "3": "192.168.5.3/24"}

    before = config.latest_number()
    changed = api.patch(
        "/api/v1/network/interfaces/eth1", {"mtu": 1400, "additional_addresses": ["192.168.5.50/24"]}, format="json"
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["mtu"] == 1400 and changed.json()["additional_addresses"] == ["192.168.5.50/24"]
    assert config.latest_number() > before

    # The second change is refused: the first one (a good MTU) is undone with it.
    now = config.latest_number()
    refused = api.patch(
        "/api/v1/network/interfaces/eth1", {"mtu": 1300, "addresses": {"2": "192.168.5.1/24"}}, format="json"
    )
    assert refused.status_code == 400
    assert "192.168.5.1" in refused.json()["detail"]
    assert Interface.objects.get(name="eth1").mtu == 1400 and config.latest_number() == now
    missing = api.get("/api/v1/network/interfaces/eth9")
    assert (missing.status_code, missing.json()["detail"]) == (404, "There is no interface eth9.")


def test_generations_are_listed_diffed_and_rolled_back(api):
    first = config.latest_number()
    api.patch("/api/v1/cluster", {"drain_time": 77}, format="json")
    listed = api.get("/api/v1/configuration/generations").json()
    assert [g["number"] for g in listed][:2] == [first + 1, first]
    assert listed[0]["created_by"] == "admin"
    detail = api.get(f"/api/v1/configuration/generations/{first + 1}").json()
    assert detail["document"]["cluster"]["drain_time"] == 77

    diff = api.get(f"/api/v1/configuration/generations/{first + 1}/diff?against={first}").json()
    assert '+    "drain_time": 77,' in diff["diff"]
    assert api.get(f"/api/v1/configuration/generations/{first + 1}/diff").status_code == 400
    assert api.get(f"/api/v1/configuration/generations/{first + 1}/diff?against=999").status_code == 404

    rolled = api.post(f"/api/v1/configuration/generations/{first}/rollback")
    assert rolled.status_code == 200 and rolled.json() == {"generation": first + 2}
    assert api.get("/api/v1/cluster").json()["drain_time"] != 77


def test_the_system_and_warning_message_files(api):
    api.post("/api/v1/nodes/2/disable")
    Event.objects.create(message="Node 3 is Down", level=Event.Level.WARNING, node_number=3)
    system = api.get("/api/v1/logs/system?limit=5").json()
    assert system[0]["message"] == "Node 3 is Down" and system[0]["node"] == 3
    assert any(line["message"].startswith("Node 2 disabled") for line in system)
    warnings = api.get("/api/v1/logs/warning").json()
    assert [line["message"] for line in warnings] == ["Node 3 is Down"]
    assert [line["node"] for line in api.get("/api/v1/logs/system?node=2").json()] == [2]
    assert api.get("/api/v1/logs/system?limit=0").status_code == 400
    assert api.get("/api/v1/logs/system?level=loud").status_code == 400

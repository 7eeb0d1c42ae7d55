"""Virtual Services > View/Modify Services: pages, validation, the cluster's restrictions, the configuration."""

import html
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cluster.configuration import rules as config
from cluster.membership.rules import node_rows
from cluster.membership.status import Status
from cluster.models import Cluster, ConfigGeneration, Event, Node, RealServer, VirtualService
from cluster.virtual_services import rules as virtual_services
from tests.helpers import VS_FORM

SHARED = "127.0.10.90"
VALID = {**VS_FORM, "address": SHARED}
NON_LOCAL = (
    "Real server 10.1.2.3 is not local: in a cluster each real server must be in the subnet of a node interface "
    "(127.0.10.0/24, 192.168.50.0/24)"
)


def node(number, interfaces, is_admin=False, **extra):
    return Node.objects.create(
        number=number,
        address=f"127.0.10.{number}",
        ssh_user=f"u{number}",
        host_key="ssh-ed25519 AAAA",
        is_admin=is_admin,
        facts={"interfaces": [{"name": name, "addresses": addresses} for name, addresses in interfaces]},
        **extra,
    )


@pytest.fixture
def in_cluster(db):
    """A cluster on 127.0.10.90: the admin's eth0 on 127.0.10.0/24, node 2 also on 192.168.50.0/24 (eth1)."""
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "clustering", "shared_address": SHARED})
    node(1, [("eth0", ["127.0.10.1/24"])], is_admin=True)
    node(2, [("eth0", ["127.0.10.2/24"]), ("eth1", ["192.168.50.2/24", "fe80::1/64"])])


def form(**changes):
    """The add/edit form as a browser posts it: an unchecked box is absent (None here)."""
    data = {**VALID, **changes}
    return {k: v for k, v in data.items() if v is not None}


def text(response):
    return html.unescape(response.content.decode())


def create(client, **changes):
    response = client.post(reverse("virtual_service_add"), form(**changes))
    assert response.status_code == 302, text(response)
    return VirtualService.objects.get(address=changes.get("address", SHARED), port=changes.get("port", 80))


def add_server(client, vs, address, port="8080", weight="1000", enabled="on"):
    data = {"address": address, "port": port, "weight": weight, "enabled": enabled}
    return client.post(reverse("real_server_add", args=[vs.pk]), {k: v for k, v in data.items() if v is not None})


def latest_document():
    return ConfigGeneration.objects.order_by("-number").first().document


class Unchanged:
    """Asserts that a refused request left every row, generation and log line as it was."""

    def __enter__(self):
        self.before = snapshot()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert snapshot() == self.before


def snapshot():
    return (
        list(VirtualService.objects.order_by("pk").values()),
        list(RealServer.objects.order_by("pk").values()),
        ConfigGeneration.objects.count(),
        Event.objects.count(),
    )


# --- creating, changing, deleting ----------------------------------------------------------


def test_creating_a_virtual_service_logs_it_and_commits_a_generation_with_every_field(admin_client, in_cluster):
    response = admin_client.post(reverse("virtual_service_add"), form())
    vs = VirtualService.objects.get()
    assert response["Location"] == reverse("virtual_service_edit", args=[vs.pk])
    page = text(admin_client.get(response["Location"]))
    assert "Virtual Service web (127.0.10.90:80) created. Add its real servers below." in page
    assert Event.objects.filter(message="Virtual Service web (127.0.10.90:80) created by admin from 127.0.0.1").exists()
    assert latest_document()["virtual_services"] == [
        {
            "name": "web",
            "address": SHARED,
            "port": 80,
            "protocol": "tcp",
            "layer": 7,
            "scheduling": "rr",
            "persistence": "none",
            "persistence_timeout": 360,
            "transparency": False,
            "subnet_originating": True,
            "check_url": "/",
            "check_status": 200,
            "interface": "eth0",
            "enabled": True,
            "real_servers": [],
        }
    ]
    assert ConfigGeneration.objects.get(number=latest_generation()).created_by.username == "admin"


def latest_generation():
    return ConfigGeneration.objects.order_by("-number").values_list("number", flat=True).first()


def test_the_add_form_offers_the_shared_address_and_the_defaults(admin_client, in_cluster):
    page = text(admin_client.get(reverse("virtual_service_add")))
    assert f'name="address" value="{SHARED}"' in page
    assert 'name="check_url" value="/"' in page
    assert 'name="check_status" value="200"' in page
    assert 'name="interface" value="eth0"' in page
    assert '<option value="7" selected>Layer 7</option>' in page


def test_the_list_shows_each_service_with_its_endpoint_layer_and_real_server_count(admin_client, in_cluster):
    web = create(admin_client)
    create(admin_client, name="mail", address="127.0.10.91", port="25", layer="7")
    add_server(admin_client, web, "127.0.10.21")
    add_server(admin_client, web, "127.0.10.22")
    page = text(admin_client.get(reverse("virtual_services")))
    rows = page.split('<tr data-vs="')[1:]
    assert [r.split('"', 1)[0] for r in rows] == ["127.0.10.90:80", "127.0.10.91:25"]
    assert ">web<" in rows[0] and ">L7<" in rows[0] and "<td>2</td>" in rows[0]
    assert ">mail<" in rows[1] and "<td>0</td>" in rows[1]
    assert reverse("virtual_service_edit", args=[web.pk]) in rows[0]
    assert 'data-confirm="Delete Virtual Service web (127.0.10.90:80) and its real servers?"' in rows[0]


def test_editing_a_service_commits_a_new_generation_and_says_what_changed(admin_client, in_cluster):
    vs = create(admin_client)
    before = latest_generation()
    response = admin_client.post(
        reverse("virtual_service_edit", args=[vs.pk]), form(port="8080", scheduling="wlc"), follow=True
    )
    assert "Virtual Service web (127.0.10.90:8080) saved." in text(response)
    assert latest_generation() == before + 1
    [entry] = latest_document()["virtual_services"]
    assert (entry["port"], entry["scheduling"]) == (8080, "wlc")
    message = "Virtual Service web (127.0.10.90:8080) changed (Port, Scheduling Method) by admin from 127.0.0.1"
    assert Event.objects.filter(message=message).exists()


def test_saving_an_unchanged_service_commits_nothing(admin_client, in_cluster):
    vs = create(admin_client)
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_edit", args=[vs.pk]), form(), follow=True)
    assert "Nothing changed." in text(response)


def test_deleting_a_service_removes_its_real_servers_and_commits_a_generation(admin_client, in_cluster):
    vs = create(admin_client)
    add_server(admin_client, vs, "127.0.10.21")
    page = text(admin_client.get(reverse("virtual_service_edit", args=[vs.pk])))
    assert "It is the last one: every node will show Disabled." in page  # the confirm() text
    assert admin_client.get(reverse("virtual_service_delete", args=[vs.pk])).status_code == 405
    response = admin_client.post(reverse("virtual_service_delete", args=[vs.pk]), follow=True)
    assert "Virtual Service web (127.0.10.90:80) deleted." in text(response)
    assert "No Virtual Services yet" in text(response)
    assert not RealServer.objects.exists()
    assert latest_document()["virtual_services"] == []
    assert Event.objects.filter(message="Virtual Service web (127.0.10.90:80) deleted by admin from 127.0.0.1").exists()


def test_a_service_that_is_gone_is_not_found(admin_client, in_cluster):
    assert admin_client.get(reverse("virtual_service_edit", args=[999])).status_code == 404
    assert admin_client.post(reverse("virtual_service_delete", args=[999])).status_code == 404
    url = reverse("real_server_add", args=[999])
    assert admin_client.post(url, {"address": "127.0.10.21", "port": "80", "weight": "1"}).status_code == 404


def test_the_first_virtual_service_takes_enabled_nodes_out_of_disabled(admin_client, in_cluster):
    now = timezone.now()
    Node.objects.filter(number=2).update(
        enabled=True, accepting=True, last_ok_at=now, healthy_since=now - timedelta(seconds=60)
    )
    assert status_of_node_2(now) == Status.DISABLED
    create(admin_client)
    # The seed's 30 s count from the moment the node could first take traffic: the first service.
    assert status_of_node_2(timezone.now()) == Status.STARTING


def status_of_node_2(now):
    _, rows, _ = node_rows(now)
    return next(r["status"] for r in rows if r["node"].number == 2)


# --- real servers --------------------------------------------------------------------------


def test_real_servers_are_added_changed_and_removed_each_as_a_new_generation(admin_client, in_cluster):
    vs = create(admin_client)
    response = add_server(admin_client, vs, "127.0.10.21", weight="500")
    assert response["Location"] == reverse("virtual_service_edit", args=[vs.pk])
    add_server(admin_client, vs, "127.0.10.3")
    assert [rs["address"] for rs in latest_document()["virtual_services"][0]["real_servers"]] == [
        "127.0.10.3",
        "127.0.10.21",
    ]
    rs = RealServer.objects.get(address="127.0.10.21")
    url = reverse("real_server_edit", args=[vs.pk, rs.pk])
    page = text(admin_client.post(url, {"address": "127.0.10.21", "port": "8443", "weight": "2000"}, follow=True))
    assert "Real server 127.0.10.21:8443 of Virtual Service web (127.0.10.90:80) saved." in page
    changed = latest_document()["virtual_services"][0]["real_servers"][1]
    assert changed == {"address": "127.0.10.21", "port": 8443, "weight": 2000, "enabled": False}
    generation = latest_generation()
    response = admin_client.post(reverse("real_server_delete", args=[vs.pk, rs.pk]), follow=True)
    assert "Real server 127.0.10.21:8443 removed from Virtual Service web (127.0.10.90:80)." in text(response)
    assert latest_generation() == generation + 1
    assert [rs["address"] for rs in latest_document()["virtual_services"][0]["real_servers"]] == ["127.0.10.3"]
    lines = list(Event.objects.order_by("id").values_list("message", flat=True))
    assert lines[1:] == [
        "Virtual Service web (127.0.10.90:80): real server 127.0.10.21:8080 (weight 500, enabled) added"
        " by admin from 127.0.0.1",
        "Virtual Service web (127.0.10.90:80): real server 127.0.10.3:8080 (weight 1000, enabled) added"
        " by admin from 127.0.0.1",
        "Virtual Service web (127.0.10.90:80): real server changed from 127.0.10.21:8080 (weight 500, enabled)"
        " to 127.0.10.21:8443 (weight 2000, disabled) by admin from 127.0.0.1",
        "Virtual Service web (127.0.10.90:80): real server 127.0.10.21:8443 removed by admin from 127.0.0.1",
    ]


def test_a_real_server_of_another_service_cannot_be_changed_through_this_one(admin_client, in_cluster):
    web = create(admin_client)
    mail = create(admin_client, name="mail", port="25")
    add_server(admin_client, mail, "127.0.10.25", port="25")
    rs = RealServer.objects.get()
    with Unchanged():
        url = reverse("real_server_edit", args=[web.pk, rs.pk])
        assert admin_client.post(url, {"address": "127.0.10.26", "port": "25", "weight": "1"}).status_code == 404
        assert admin_client.post(reverse("real_server_delete", args=[web.pk, rs.pk])).status_code == 404


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"weight": "0"}, "Weight: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"weight": "65536"}, "Weight: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"weight": "heavy"}, "Weight: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"port": "0"}, "Real Server Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"port": "70000"}, "Real Server Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"address": "127.0.10.300"}, "Real Server Address: enter an IPv4 address, such as 10.0.0.5"),
        ({"address": "backend"}, "Real Server Address: enter an IPv4 address, such as 10.0.0.5"),
        ({"address": "255.255.255.255"}, "Real Server Address: 255.255.255.255 is not a host address"),
        ({"address": "127.0.10.21"}, "Real Server Port: 127.0.10.21:8080 is already a real server of this service"),
    ],
)
def test_a_bad_real_server_is_refused_with_the_reason_and_nothing_changes(admin_client, in_cluster, changes, reason):
    vs = create(admin_client)
    add_server(admin_client, vs, "127.0.10.21")
    with Unchanged():
        response = add_server(admin_client, vs, **{"address": "127.0.10.22", **changes})
    assert response.status_code == 400
    assert reason in text(response)
    assert f'value="{changes.get("address", "127.0.10.22")}"' in text(response)  # the input is kept


def test_a_refused_change_to_a_real_server_keeps_the_input_in_its_row(admin_client, in_cluster):
    vs = create(admin_client)
    add_server(admin_client, vs, "127.0.10.21")
    rs = RealServer.objects.get()
    with Unchanged():
        url = reverse("real_server_edit", args=[vs.pk, rs.pk])
        response = admin_client.post(url, {"address": "127.0.10.21", "port": "8080", "weight": "99999"})
    assert response.status_code == 400
    page = text(response)
    assert "Weight: enter a whole number from 1 to 65535" in page
    row = page.split('<tr data-real-server="127.0.10.21:8080" class="invalid">')[1].split("</tr>")[0]
    assert 'value="99999"' in row


# --- validation of the service ------------------------------------------------------------


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"port": "0"}, "Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"port": "65536"}, "Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"port": "http"}, "Port: enter a whole number from 1 to 65535 (Valid Values: 1-65535)"),
        ({"address": "127.0.10.256"}, "Virtual Address: enter an IPv4 address, such as 10.0.0.5"),
        ({"address": "2001:db8::1"}, "Virtual Address: enter an IPv4 address, such as 10.0.0.5"),
        ({"address": "224.0.0.1"}, "Virtual Address: 224.0.0.1 is not a host address"),
        ({"check_status": "99"}, "Expected HTTP Status: enter a whole number from 100 to 599"),
        ({"check_status": "600"}, "Expected HTTP Status: enter a whole number from 100 to 599"),
        ({"check_status": ""}, "Expected HTTP Status: enter a whole number from 100 to 599"),
        ({"check_url": "health"}, "Health Check URL: enter a path that starts with /, such as /health"),
        ({"check_url": "/a b"}, "Health Check URL: enter a path that starts with /, such as /health"),
        ({"check_url": '/a"b'}, "(no spaces, quotes, backslashes or #)"),
        ({"check_url": "/a#b"}, "(no spaces, quotes, backslashes or #)"),
        ({"persistence_timeout": "0"}, "Persistence Timeout: enter a whole number from 1 to 604800"),
        ({"layer": "3"}, "Layer: choose Layer 7 or Layer 4"),
        ({"protocol": "sctp"}, "Protocol: choose TCP or UDP"),
        ({"scheduling": "random"}, "Scheduling Method: choose round robin or weighted round robin or least"),
        ({"persistence": "ssl"}, "Persistence Mode: choose None or Source IP Address or Active Cookie"),
        ({"interface": "eth0; reboot"}, "Interface: enter an interface name, such as eth0"),
        ({"name": ""}, "Service Name: enter a name"),
    ],
)
def test_a_bad_value_is_refused_with_the_reason_and_nothing_is_saved(admin_client, in_cluster, changes, reason):
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_add"), form(**changes))
    assert response.status_code == 400
    assert reason in text(response)


def test_a_second_service_on_the_same_address_and_port_is_refused(admin_client, in_cluster):
    create(admin_client)
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_add"), form(name="other"))
    assert response.status_code == 400
    assert "Port: 127.0.10.90:80 is already used by Virtual Service web" in text(response)
    assert 'name="name" value="other"' in text(response)


def test_a_refused_edit_changes_nothing_and_shows_the_input(admin_client, in_cluster):
    vs = create(admin_client)
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_edit", args=[vs.pk]), form(port="99999", name="renamed"))
    assert response.status_code == 400
    page = text(response)
    assert "Port: enter a whole number from 1 to 65535" in page
    assert "<h1>Modify Virtual Service web (127.0.10.90:80)</h1>" in page
    assert 'name="name" value="renamed"' in page


# --- the cluster's restrictions (seed 2.2) ------------------------------------------------


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"layer": "4"}, "Layer: in a cluster all Virtual Services must operate at Layer 7"),
        ({"transparency": "on"}, "Transparency cannot be enabled in a cluster"),
        ({"subnet_originating": None}, "Subnet Originating Requests must be enabled in a cluster"),
        (
            {"interface": "eth1"},
            "Interface eth1: Virtual Services are only possible on the primary interface (eth0) in a cluster",
        ),
    ],
)
def test_a_cluster_refuses_a_setting_it_cannot_run_and_saves_nothing(admin_client, in_cluster, changes, reason):
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_add"), form(**changes))
    assert response.status_code == 400
    assert reason in text(response)
    assert not VirtualService.objects.exists()


def test_every_incompatible_setting_is_listed_at_once(admin_client, in_cluster):
    with Unchanged():
        response = admin_client.post(
            reverse("virtual_service_add"), form(layer="4", transparency="on", subnet_originating=None)
        )
    alert = text(response).split('role="alert"')[1].split("</ul>")[0]
    assert alert.count("<li>") == 3


def test_a_cluster_refuses_editing_a_service_into_an_incompatible_setting(admin_client, in_cluster):
    vs = create(admin_client)
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_edit", args=[vs.pk]), form(layer="4"))
    assert response.status_code == 400
    assert "Layer: in a cluster all Virtual Services must operate at Layer 7" in text(response)


def test_a_cluster_refuses_a_real_server_outside_every_node_subnet(admin_client, in_cluster):
    vs = create(admin_client)
    with Unchanged():
        response = add_server(admin_client, vs, "10.1.2.3")
    assert response.status_code == 400
    assert NON_LOCAL in text(response)
    # Local means on any node's interface, not only the admin's.
    assert add_server(admin_client, vs, "192.168.50.7").status_code == 302
    rs = RealServer.objects.get()
    with Unchanged():
        url = reverse("real_server_edit", args=[vs.pk, rs.pk])
        response = admin_client.post(url, {"address": "10.1.2.3", "port": "8080", "weight": "1000"})
    assert response.status_code == 400
    assert NON_LOCAL in text(response)


def test_the_primary_interface_is_the_admin_nodes_first_interface(admin_client, in_cluster):
    Node.objects.filter(is_admin=True).update(facts={"interfaces": [{"name": "bond0", "addresses": []}]})
    with Unchanged():
        response = admin_client.post(reverse("virtual_service_add"), form(interface="eth0"))
    assert "Virtual Services are only possible on the primary interface (bond0) in a cluster" in text(response)
    assert admin_client.post(reverse("virtual_service_add"), form(interface="bond0")).status_code == 302


def test_without_node_addresses_no_real_server_is_local(admin_client, in_cluster):
    Node.objects.update(facts={})
    vs = create(admin_client)
    response = add_server(admin_client, vs, "127.0.10.21")
    assert response.status_code == 400
    assert "(no node has reported an interface address)" in text(response)


@pytest.mark.parametrize("mode,shared", [("none", None), ("ha", None), ("clustering", None)])
def test_a_unit_that_is_not_clustered_may_use_every_setting(admin_client, db, mode, shared):
    Cluster.objects.update_or_create(pk=1, defaults={"mode": mode, "shared_address": shared})
    vs = create(
        admin_client, address="10.0.0.5", layer="4", transparency="on", subnet_originating=None, interface="eth1"
    )
    assert add_server(admin_client, vs, "10.1.2.3").status_code == 302
    [entry] = latest_document()["virtual_services"]
    assert (entry["layer"], entry["transparency"], entry["subnet_originating"], entry["interface"]) == (
        4,
        True,
        False,
        "eth1",
    )
    assert entry["real_servers"][0]["address"] == "10.1.2.3"


def test_after_clustering_the_list_names_every_setting_a_cluster_refuses(admin_client, db):
    vs = create(admin_client, name="old", layer="4", transparency="on")
    add_server(admin_client, vs, "10.1.2.3")
    assert 'role="note"' not in text(admin_client.get(reverse("virtual_services")))
    Cluster.objects.filter(pk=1).update(mode="clustering", shared_address=SHARED)
    node(1, [("eth0", ["127.0.10.1/24"])], is_admin=True)
    expected = [
        "Virtual Service old (127.0.10.90:80): Layer: in a cluster all Virtual Services must operate at Layer 7",
        "Virtual Service old (127.0.10.90:80): Transparency cannot be enabled in a cluster",
        "Virtual Service old (127.0.10.90:80): Real server 10.1.2.3 is not local: in a cluster each real server "
        "must be in the subnet of a node interface (127.0.10.0/24)",
    ]
    assert virtual_services.incompatible_settings() == expected
    page = text(admin_client.get(reverse("virtual_services")))
    note = page.split('role="note"')[1].split("</div>")[0]
    assert all(f"<li>{line}</li>" in note for line in expected)


# --- the configuration document and concurrency --------------------------------------------


def test_rendering_is_deterministic_and_sorted_by_address(db):
    for address, port in [("10.0.0.10", 80), ("10.0.0.9", 443), ("10.0.0.9", 80)]:
        vs = VirtualService.objects.create(name=f"s{address}:{port}", address=address, port=port)
        for rs in ["10.1.0.20", "10.1.0.3", "10.1.0.100"]:
            RealServer.objects.create(virtual_service=vs, address=rs, port=port)
    first, second = config.render(), config.render()
    assert config.canonical(first) == config.canonical(second)
    assert [(v["address"], v["port"]) for v in first["virtual_services"]] == [
        ("10.0.0.9", 80),
        ("10.0.0.9", 443),
        ("10.0.0.10", 80),
    ]
    servers = [rs["address"] for rs in first["virtual_services"][0]["real_servers"]]
    assert servers == ["10.1.0.3", "10.1.0.20", "10.1.0.100"]


def test_two_operators_creating_the_same_endpoint_at_once_leave_one_service(admin_user, transactional_db):
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "none"})
    barrier = threading.Barrier(2)
    statuses = []

    def operator(name):
        client = Client()
        client.force_login(admin_user)
        barrier.wait()
        try:
            statuses.append(client.post(reverse("virtual_service_add"), form(name=name)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=operator, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [302, 400]
    assert VirtualService.objects.count() == 1
    assert ConfigGeneration.objects.count() == 1
    assert Event.objects.filter(message__contains="created by admin").count() == 1


def test_a_refused_field_is_marked_invalid_and_described_by_its_error(admin_client, in_cluster):
    response = admin_client.post(reverse("virtual_service_add"), form(port="70000"))
    assert response.status_code == 400
    page = response.content.decode()
    field = re.search(r'<input[^>]*name="port"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in field
    described = re.search(r'aria-describedby="([^"]+)"', field).group(1).split()
    assert "id_port_error" in described and 'id="id_port_error"' in page

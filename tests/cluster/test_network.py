"""Network Setup: the shared pages' changes and refusals, the document, the check address, the node-local page."""

import html
import json

import pytest
from auditlog.models import LogEntry
from django.test import override_settings
from django.urls import reverse

from cluster.configuration import rules as config
from cluster.models import Cluster, ConfigGeneration, Event, Interface, Node, NodeInterface
from cluster.network.document import CHECKS_REQUIRED, check_address, check_addresses, network_document, update_addresses

pytestmark = pytest.mark.django_db
SHARED = "127.0.11.90"
MTU_MESSAGE = "MTU: enter a whole number from 576 to 9216 (Valid Values: 576-9216)"


def facts(n, speed=10000):
    return {
        "interfaces": [
            {
                "name": "eth0",
                "mac": f"00:00:00:00:00:0{n}",
                "speed_mbps": speed,
                "duplex": "full",
                "mtu": 1500,
                "addresses": [f"127.0.11.{n}/24"],
            },
            {"name": "eth1", "mac": f"00:00:00:00:01:0{n}", "speed_mbps": None, "duplex": "unknown", "mtu": 65536},
        ]
    }


def make_node(n):
    return Node.objects.create(
        number=n,
        address=f"127.0.11.{n}",
        ssh_user="u",
        host_key="ssh-ed25519 AAAA",
        is_admin=n == 1,
        facts={
            "interfaces": [{**i, "addresses": i.get("addresses", [f"10.1.0.{n}/24"])} for i in facts(n)["interfaces"]]
        },
    )


@pytest.fixture
def nodes():
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "clustering", "shared_address": SHARED})
    return [make_node(n) for n in (1, 2, 3)]


@pytest.fixture(autouse=True)
def network_in_the_document(monkeypatch):
    """Until config.render() carries the network section itself, add it as it will be wired."""
    plain = config.render

    def render():
        document = plain()
        return document if "network" in document else {**document, "network": network_document()}

    monkeypatch.setattr(config, "render", render)


def interface_page(client, index=0):
    response = client.get(reverse("network_interface", args=[index]))
    assert response.status_code == 200
    return response.content.decode()


def post(client, action, data, index=0):
    return client.post(reverse("network_change", args=[index, action]), data)


def newest_network():
    return ConfigGeneration.objects.order_by("-number").first().document["network"]


def eth(index):
    return newest_network()["interfaces"][index]


def addresses(**extra):
    return {"node_1": "127.0.11.1/24", "node_2": "127.0.11.2/24", "node_3": "127.0.11.3/24", **extra}


# --- the pages --------------------------------------------------------------------


def test_interfaces_come_from_the_admin_nodes_facts_and_are_listed_with_links(admin_client, nodes):
    page = admin_client.get(reverse("network_setup")).content.decode()
    assert f'href="{reverse("network_interface", args=[0])}">Network Interface 0</a>' in page
    assert f'href="{reverse("network_interface", args=[1])}">Network Interface 1</a>' in page
    assert list(Interface.objects.values_list("name", "mtu")) == [("eth0", 1500), ("eth1", 1500)]
    assert NodeInterface.objects.count() == 6


def test_the_interface_page_shows_the_seeds_screen(admin_client, nodes):
    page = interface_page(admin_client)
    for label in (
        "Network Interface 0",
        "Interface Address (address/prefix)",
        "Cluster Shared IP address",
        "Use for Cluster checks",
        "Use for Cluster Updates",
        "Use for GEO Responses and Requests",
        "Link Status",
        "Additional addresses (address/prefix)",
        "(Valid Values: 576-9216)",
    ):
        assert label in page
    for button in ("Set Address", "Set Shared address", "Set", "Force Link", "Set MTU", "Add Address"):
        assert f">{button}</button>" in page
    assert 'name="node_2" value="127.0.11.2/24"' in page
    assert f'name="cluster_shared_address" value="{SHARED}"' in page
    assert 'id="id_use_for_cluster_checks" name="use_for_cluster_checks" form="network-options" checked' in page
    assert "Speed: 10000Mb/s, Full Duplex" in page
    assert 'name="mtu" value="1500"' in page
    assert '<option value="auto" selected>Automatic</option>' in page


def test_the_second_interface_starts_unticked_with_unknown_link(admin_client, nodes):
    page = interface_page(admin_client, 1)
    assert "Speed: unknown, Duplex unknown" in page
    assert 'form="network-options" checked' not in page
    assert 'name="cluster_shared_address" value=""' in page


def test_default_gateway_is_shown_read_only_per_node(admin_client, nodes):
    page = interface_page(admin_client)
    assert 'type="checkbox" disabled checked aria-label="Use for Default Gateway on node 2"' in page
    assert "set it on the node's own WUI" in page


def test_a_node_added_later_gets_its_row(admin_client, nodes):
    interface_page(admin_client)
    make_node(4)
    assert 'name="node_4" value="127.0.11.4/24"' in interface_page(admin_client)


def test_an_unknown_setting_or_interface_is_not_found(admin_client, nodes):
    assert post(admin_client, "colour", {"colour": "red"}).status_code == 404
    assert admin_client.get(reverse("network_interface", args=[7])).status_code == 404


# --- successful changes -------------------------------------------------------------------


def test_setting_the_mtu_commits_a_generation_with_it(admin_client, nodes):
    interface_page(admin_client)
    before = ConfigGeneration.objects.count()
    response = post(admin_client, "mtu", {"mtu": "9000"})
    assert response.status_code == 302
    assert ConfigGeneration.objects.count() == before + 1
    assert eth(0)["mtu"] == 9000
    page = admin_client.get(response["Location"]).content.decode()
    assert "MTU changed from 1500 to 9000" in page and 'name="mtu" value="9000"' in page
    assert Event.objects.filter(
        message__startswith="Network Setup: eth0 MTU changed from 1500 to 9000 by admin"
    ).exists()


def test_a_change_is_in_the_audit_log(admin_client, nodes):
    post(admin_client, "mtu", {"mtu": "9000"})
    entry = LogEntry.objects.get_for_model(Interface).get(object_repr__contains="eth0")
    assert entry.actor.username == "admin"
    assert entry.changes_dict["mtu"] == ["1500", "9000"]


def test_setting_node_addresses(admin_client, nodes):
    response = post(admin_client, "address", addresses(node_2="127.0.11.22/24"))
    assert response.status_code == 302
    assert eth(0)["nodes"] == [
        {"id": 1, "address": "127.0.11.1/24"},
        {"id": 2, "address": "127.0.11.22/24"},
        {"id": 3, "address": "127.0.11.3/24"},
    ]
    assert (
        "Interface Address node 2 127.0.11.2/24 -&gt; 127.0.11.22/24"
        in admin_client.get(response["Location"]).content.decode()
    )


def test_a_node_may_keep_its_own_address_and_a_netmask_is_written_as_a_prefix(admin_client, nodes):
    assert post(admin_client, "address", addresses(node_3="127.0.11.3/255.255.0.0")).status_code == 302
    assert eth(0)["nodes"][2]["address"] == "127.0.11.3/16"


def test_setting_and_clearing_the_shared_address(admin_client, nodes):
    assert post(admin_client, "shared", {"cluster_shared_address": "10.1.0.90"}, index=1).status_code == 302
    assert eth(1)["cluster_shared_address"] == "10.1.0.90"
    assert post(admin_client, "shared", {"cluster_shared_address": ""}, index=1).status_code == 302
    assert eth(1)["cluster_shared_address"] is None


def test_forcing_the_link(admin_client, nodes):
    assert post(admin_client, "link", {"link_mode": "1000-full"}).status_code == 302
    assert eth(0)["link_mode"] == "1000-full"
    assert '<option value="1000-full" selected>1000Mb/s, Full Duplex</option>' in interface_page(admin_client)


def test_adding_and_removing_additional_addresses(admin_client, nodes):
    assert post(admin_client, "add_address", {"address": "127.0.11.200/24"}).status_code == 302
    assert post(admin_client, "add_address", {"address": "127.0.11.100/24"}).status_code == 302
    assert eth(0)["additional_addresses"] == ["127.0.11.100/24", "127.0.11.200/24"]
    assert 'aria-label="Remove 127.0.11.200/24"' in interface_page(admin_client)
    assert post(admin_client, "remove_address", {"address": "127.0.11.200/24"}).status_code == 302
    assert eth(0)["additional_addresses"] == ["127.0.11.100/24"]
    page = interface_page(admin_client)
    assert "Network Interface 0 (eth0): additional address 127.0.11.200/24 removed." in page
    assert 'aria-label="Remove 127.0.11.200/24"' not in page and 'aria-label="Remove 127.0.11.100/24"' in page


def test_cluster_checks_may_move_to_another_interface(admin_client, nodes):
    interface_page(admin_client)
    assert post(admin_client, "options", {"use_for_cluster_checks": "on"}, index=1).status_code == 302
    assert post(admin_client, "options", {"use_for_geo": "on"}, index=0).status_code == 302
    assert [(i["use_for_cluster_checks"], i["use_for_cluster_updates"], i["use_for_geo"]) for i in eth_all()] == [
        (False, False, True),
        (True, False, False),
    ]
    assert check_address(nodes[1]) == "10.1.0.2"


def eth_all():
    return newest_network()["interfaces"]


# --- refusals: 400, the field named, nothing changed -----------------------------------------------

NODE2 = "Interface Address for node 2:"
SHARED_LABEL = "Cluster Shared IP address:"
EXTRA = "Additional addresses:"
REFUSALS = [
    ("mtu", {"mtu": "575"}, MTU_MESSAGE),
    ("mtu", {"mtu": "9217"}, MTU_MESSAGE),
    ("mtu", {"mtu": "jumbo"}, MTU_MESSAGE),
    ("mtu", {}, MTU_MESSAGE),
    ("address", addresses(node_2="127.0.11.300/24"), f"{NODE2} '127.0.11.300/24' is not an IPv4 address/prefix"),
    ("address", addresses(node_2="127.0.11.2"), f"{NODE2} 127.0.11.2 has no prefix"),
    ("address", addresses(node_2="127.0.11.2/33"), f"{NODE2} '127.0.11.2/33' is not an IPv4 address/prefix"),
    ("address", addresses(node_2="127.0.11.2/0"), f"{NODE2} the prefix must be from 1 to 32"),
    ("address", addresses(node_2="127.0.11.0/24"), f"{NODE2} 127.0.11.0 is the network or broadcast address"),
    ("address", addresses(node_2="127.0.11.255/24"), f"{NODE2} 127.0.11.255 is the network or broadcast address"),
    ("address", addresses(node_2="224.0.0.1/24"), f"{NODE2} 224.0.0.1 cannot be a host's address"),
    ("address", addresses(node_3="127.0.11.2/24"), "Interface Address for node 3: 127.0.11.2 is also given to node 2"),
    ("address", addresses(node_2="10.1.0.1/24"), f"{NODE2} 10.1.0.1 is already node 1's address on eth1"),
    ("address", addresses(node_2=f"{SHARED}/24"), f"{NODE2} {SHARED} is already the Cluster Shared IP address of eth0"),
    ("address", addresses(node_2="127.0.11.3/24", node_3="127.0.11.33/24"), f"{NODE2} 127.0.11.3 is already node 3's"),
    ("shared", {"cluster_shared_address": "10.0.0.256"}, f"{SHARED_LABEL} '10.0.0.256' is not an IPv4 address"),
    ("shared", {"cluster_shared_address": "127.0.11.3/24"}, f"{SHARED_LABEL} '127.0.11.3/24' is not an IPv4 address"),
    (
        "shared",
        {"cluster_shared_address": "127.0.11.3"},
        f"{SHARED_LABEL} 127.0.11.3 is already node 3's address on eth0",
    ),
    ("shared", {"cluster_shared_address": "10.1.0.2"}, f"{SHARED_LABEL} 10.1.0.2 is already node 2's address on eth1"),
    ("link", {"link_mode": "turbo"}, "Link Status: choose Automatic or one of the listed speeds"),
    ("link", {}, "Link Status: choose Automatic or one of the listed speeds"),
    ("add_address", {"address": ""}, f"{EXTRA} enter an IPv4 address/prefix such as 10.0.0.5/24"),
    ("add_address", {"address": "nonsense"}, f"{EXTRA} 'nonsense' is not an IPv4 address/prefix"),
    ("add_address", {"address": "127.0.11.2/24"}, f"{EXTRA} 127.0.11.2 is already node 2's address on eth0"),
    ("add_address", {"address": f"{SHARED}/24"}, f"{EXTRA} {SHARED} is already the Cluster Shared IP address of eth0"),
    ("remove_address", {"address": "127.0.11.50/24"}, f"{EXTRA} 127.0.11.50/24 is not an additional address"),
    ("options", {"use_for_cluster_updates": "on", "use_for_geo": "on"}, CHECKS_REQUIRED),
]


@pytest.mark.parametrize("action,data,message", REFUSALS, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(REFUSALS)])
def test_bad_input_is_refused_and_changes_nothing(admin_client, nodes, action, data, message):
    interface_page(admin_client)
    post(admin_client, "mtu", {"mtu": "1400"})  # a generation to compare against
    generations, events, document = ConfigGeneration.objects.count(), Event.objects.count(), network_document()
    response = post(admin_client, action, data)
    assert response.status_code == 400
    assert f'<p class="message error" role="status">{message}' in html.unescape(response.content.decode())
    assert ConfigGeneration.objects.count() == generations
    assert Event.objects.count() == events
    assert network_document() == document


def test_the_last_cluster_checks_interface_cannot_be_unticked(admin_client, nodes):
    interface_page(admin_client)
    response = post(admin_client, "options", {"use_for_cluster_updates": "on", "use_for_geo": "on"})
    assert response.status_code == 400
    assert "At least one interface must be used for cluster checks" in response.content.decode()
    assert Interface.objects.get(index=0).use_for_cluster_checks
    ticked = 'id="id_use_for_cluster_checks" name="use_for_cluster_checks" form="network-options" checked'
    assert ticked in response.content.decode()
    assert ticked in interface_page(admin_client)


def test_a_refused_value_stays_in_its_field(admin_client, nodes):
    page = post(admin_client, "mtu", {"mtu": "99999"}).content.decode()
    assert 'name="mtu" value="99999"' in page
    assert f'name="cluster_shared_address" value="{SHARED}"' in page


# --- what the rest of the cluster reads ---------------------------------------------------------------


def test_the_document_is_deterministic_whatever_order_rows_were_made_in(admin_client):
    Cluster.objects.update_or_create(pk=1, defaults={"shared_address": SHARED})
    for n in (3, 1, 2):
        make_node(n)
    interface_page(admin_client)
    post(admin_client, "add_address", {"address": "127.0.11.201/24"})
    post(admin_client, "add_address", {"address": "127.0.11.9/24"})
    first = network_document()
    assert json.dumps(first, sort_keys=True) == json.dumps(network_document(), sort_keys=True)
    assert [i["name"] for i in first["interfaces"]] == ["eth0", "eth1"]
    assert [n["id"] for n in first["interfaces"][0]["nodes"]] == [1, 2, 3]
    assert first["interfaces"][0]["additional_addresses"] == ["127.0.11.9/24", "127.0.11.201/24"]
    assert first == newest_network()


def test_an_unchanged_setting_makes_no_new_generation(admin_client, nodes):
    post(admin_client, "mtu", {"mtu": "1400"})
    count = ConfigGeneration.objects.count()
    assert post(admin_client, "mtu", {"mtu": "1400"}).status_code == 302
    assert ConfigGeneration.objects.count() == count


def test_check_address_is_the_address_on_the_cluster_checks_interface(admin_client, nodes):
    node = nodes[1]
    assert check_address(node) == node.address  # no interfaces configured yet
    interface_page(admin_client)
    post(admin_client, "address", addresses(node_2="127.0.11.22/24"))
    node.refresh_from_db()
    assert check_address(node) == "127.0.11.22"
    assert check_addresses(nodes) == {nodes[0].pk: "127.0.11.1", node.pk: "127.0.11.22", nodes[2].pk: "127.0.11.3"}
    assert update_addresses(node) == ["127.0.11.22"]


def test_check_address_falls_back_to_the_node_address_when_it_has_none_there(admin_client, nodes):
    interface_page(admin_client)
    post(admin_client, "address", addresses(node_3=""))
    assert check_address(nodes[2]) == "127.0.11.3"
    assert check_addresses(nodes)[nodes[2].pk] == "127.0.11.3"
    post(admin_client, "options", {"use_for_cluster_checks": "on", "use_for_cluster_updates": "on"}, index=1)
    post(admin_client, "options", {}, index=0)
    assert check_address(nodes[2]) == "10.1.0.3"
    assert update_addresses(nodes[2]) == ["10.1.0.3"]


# --- the node-local page ----------------------------------------------------------------------------------


@pytest.fixture
def unit(tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    (tmp_path / "node.json").write_text(
        json.dumps({"interfaces": [{"name": "eth0", "device": "lo", "addresses": ["127.0.11.3/24"]}]})
    )
    (tmp_path / "membership.json").write_text(json.dumps({"mode": "member", "shared_address": SHARED}))
    network = {"interfaces": [{**eth0_settings(), "nodes": [{"id": 3, "address": "127.0.11.3/24"}]}]}
    (tmp_path / "config.json").write_text(json.dumps({"generation": 4, "config": {"network": network}}))
    return tmp_path


def eth0_settings():
    return {
        "index": 0,
        "name": "eth0",
        "cluster_shared_address": SHARED,
        "use_for_cluster_checks": True,
        "use_for_cluster_updates": False,
        "use_for_geo": True,
        "mtu": 9000,
        "link_mode": "1000-full",
        "additional_addresses": ["127.0.11.150/24"],
    }


def local(client, data=None):
    if data is None:
        return client.get("/network-setup/")
    return client.post("/network-setup/", data)


@override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node")
def test_the_node_local_page_shows_own_settings_and_the_clusters_read_only(admin_client, unit):
    response = local(admin_client)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'value="127.0.11.3/24"' in page
    assert 'aria-label="Use for Default Gateway on eth0" checked' in page
    link = f"https://{SHARED}:8000/network-setup/"
    assert f'Change these on the shared address: <a href="{link}">{link}</a>' in page
    assert "<td>9000</td>" in page and "<td>1000Mb/s, Full Duplex</td>" in page and "127.0.11.150/24" in page
    assert 'name="mtu"' not in page and 'name="cluster_shared_address"' not in page


@override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node")
def test_the_node_local_settings_are_saved_in_the_units_state(admin_client, unit):
    response = local(admin_client, {"interface": "eth0", "address": "127.0.11.33/24"})
    assert response.status_code == 302
    saved = json.loads((unit / "local_network.json").read_text())
    assert saved == {"interfaces": {"eth0": {"address": "127.0.11.33/24", "use_for_default_gateway": False}}}
    page = local(admin_client).content.decode()
    assert 'value="127.0.11.33/24"' in page
    assert 'aria-label="Use for Default Gateway on eth0">' in page
    assert (
        "Network Setup: eth0 address 127.0.11.33/24, Use for Default Gateway off by admin"
        in (unit / "node.log").read_text()
    )


@override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node")
@pytest.mark.parametrize(
    "data,message",
    [
        ({"interface": "eth0", "address": "127.0.11.3"}, "Interface Address: 127.0.11.3 has no prefix"),
        (
            {"interface": "eth0", "address": "300.1.1.1/24"},
            "Interface Address: '300.1.1.1/24' is not an IPv4",
        ),
        ({"interface": "eth0", "address": ""}, "Interface Address: enter an IPv4 address/prefix"),
        ({"interface": "eth9", "address": "127.0.11.3/24"}, "Interface: this unit has no interface 'eth9'"),
        ({"interface": "eth0", "address": f"{SHARED}/24"}, f"Interface Address: {SHARED} is an address of the cluster"),
        (
            {"interface": "eth0", "address": "127.0.11.150/24"},
            "Interface Address: 127.0.11.150 is an address of the cluster",
        ),
    ],
)
def test_the_node_local_page_refuses_bad_input(admin_client, unit, data, message):
    response = local(admin_client, {**data, "use_for_default_gateway": "on"})
    assert response.status_code == 400
    assert f'<p class="message error" role="status">{message}' in html.unescape(response.content.decode())
    assert not (unit / "local_network.json").exists()


@override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node")
def test_a_standalone_unit_has_no_cluster_settings_to_show(admin_client, unit):
    (unit / "membership.json").write_text(json.dumps({"mode": "standalone"}))
    (unit / "config.json").unlink()
    page = local(admin_client).content.decode()
    assert "This unit is not in a cluster" in page
    assert "Change these on the shared address" not in page

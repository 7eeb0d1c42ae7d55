"""Real traffic: clients reach the Virtual Service on the admin node, every node in rotation carries
it to the real servers, and Cluster Control's statuses decide who takes new connections."""

import http.client
import re

import pytest
from django.urls import reverse

from cluster.configuration import rules as config
from cluster.models import Node, VirtualService
from tests.helpers import SHARED, VS_FORM, fetch_service, move_clock, said, set_drain_time, wait_until

pytestmark = pytest.mark.usefixtures("serving")

fetch = fetch_service


def carried_by(body):
    """The real server's answer ends with the address that connected to it: the node's."""
    return body.split()[-1]


def nodes_seen(count):
    return {carried_by(fetch()) for _ in range(count)}


class KeptOpen:
    """A client that keeps its connection open between requests (HTTP keep-alive)."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(SHARED, 80, timeout=5)

    def close(self):
        self.conn.close()

    def get(self, path="/"):
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.read().decode()

    def closed_by_the_cluster(self):
        try:
            self.get()
        except (ConnectionError, http.client.HTTPException, OSError):
            return True
        return False


def test_every_node_in_rotation_carries_requests_to_the_real_servers(serving, real_servers):
    addresses = {unit.address for unit in serving.nodes}
    seen = wait_until(lambda: (s := nodes_seen(40)) >= addresses and s, 20, message=lambda: str(nodes_seen(8)))
    assert seen == addresses  # the admin node passes traffic too, as in the seed
    names = {fetch().split()[0] for _ in range(30)}
    assert names == {name for name, _, _ in real_servers.servers}


def test_a_disabled_node_takes_no_new_connections_and_its_open_one_goes_on_until_the_drain_time_ends(
    serving, admin_client
):
    set_drain_time(60)  # applied first: a connection opened before a node's reload stays with its old process
    clients = one_open_connection_on_every_node(serving)
    try:
        drains(clients, admin_client)
    finally:
        for client in clients.values():
            client.close()


def one_open_connection_on_every_node(cluster):
    """{node address: a kept-open connection it carries}. With one open on each, the spreader
    (least connections) has every node tied, so a node it still gives new connections to is seen."""
    clients, extra = {}, []
    for _ in range(50):
        client = KeptOpen()
        address = carried_by(client.get())
        (extra if address in clients else []).append(client)
        clients.setdefault(address, client)
        if len(clients) == len(cluster.nodes):
            break
    for client in extra:
        client.close()
    assert len(clients) == len(cluster.nodes), f"open connections went to {sorted(clients)} only"
    return clients


def drains(clients, admin_client):
    node = next(n for n in Node.objects.filter(is_admin=False).order_by("number") if n.address in clients)
    client = clients[node.address]
    assert node.address in nodes_seen(30)  # in rotation: it takes its share of new connections
    admin_client.post(reverse("node_action", args=[node.pk, "disable"]))
    # New connections go to the others from the health round that saw it Draining on.
    wait_until(lambda: node.address not in nodes_seen(30), 10)
    assert node.address not in nodes_seen(60)
    assert carried_by(client.get()) == node.address  # the open connection still works on it

    # Cluster Control shows it: Draining, with the time and the connections left.
    wait_until(lambda: Node.objects.get(pk=node.pk).active_connections == 1, 10)
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert f'data-node="{node.number}" data-status="draining"' in page
    assert "1 connection left" in page
    # and Delete is refused while that connection is open, with the count in the reason.
    response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]))
    assert "still handles 1 open connection" in " ".join(said(response))
    assert Node.objects.filter(pk=node.pk, removing=False).exists()

    # When the drain time is over, what is left is closed; the others' open connections go on.
    move_clock(61)
    wait_until(client.closed_by_the_cluster, 10)
    assert node.address not in nodes_seen(30)
    assert all(carried_by(c.get()) == address for address, c in clients.items() if address != node.address)


def test_a_node_that_stops_answering_leaves_rotation_and_no_request_fails_after(serving):
    stopped = serving.node(3)
    stopped.stop()
    # The admin's own checks take it out before the control plane marks it Down.
    wait_until(lambda: stopped.address not in nodes_seen(20), 10)
    results = [carried_by(fetch()) for _ in range(100)]
    assert stopped.address not in results
    assert len(set(results)) == 3


def test_cluster_control_shows_each_nodes_connections_and_the_clusters(serving, admin_client):
    clients = [KeptOpen() for _ in range(6)]
    try:
        shows_them(clients, admin_client)
    finally:
        for client in clients:
            client.close()


def shows_them(clients, admin_client):
    for client in clients:
        client.get()

    def shown():
        page = admin_client.get(reverse("cluster_control"), HTTP_HX_REQUEST="true").content.decode()
        return 'id="cluster-connections">6<' in page and page

    page = wait_until(shown, 10)
    # Each row shows its node's own count, and the rows add up to the cluster's line.
    rows = re.findall(r'<tr data-node="(\d+)".*?<td class="connections">(\d+)</td>', page, re.S)
    assert sorted(int(number) for number, _ in rows) == [1, 2, 3, 4]
    assert sum(int(count) for _, count in rows) == 6
    for client in clients:
        client.close()
    wait_until(lambda: 'id="cluster-connections">0<' in admin_client.get(reverse("cluster_control")).content.decode())


def test_a_configuration_haproxy_cannot_run_is_refused_and_the_previous_one_keeps_serving(serving, admin_client):
    # Port 2222 is where every unit's sshd listens: HAProxy cannot bind it on the nodes.
    response = admin_client.post(
        reverse("virtual_service_add"),
        {**VS_FORM, "name": "clash", "address": f"{SHARED.rsplit('.', 1)[0]}.95", "port": "2222"},
    )
    assert response.status_code == 302, said(response)
    refused = wait_until(lambda: Node.objects.exclude(config_error="").first(), 15)
    assert "HAProxy" in refused.config_error
    assert "2222" in refused.config_error
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "HAProxy" in page
    assert fetch().startswith("rs")  # the previous configuration still serves
    VirtualService.objects.filter(port=2222).delete()
    with config.change():
        pass
    wait_until(lambda: not Node.objects.exclude(config_error="").exists(), 15)

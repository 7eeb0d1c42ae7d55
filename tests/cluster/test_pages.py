"""Cluster pages over HTTP: HA and Clustering, the live table, the join endpoint's refusals."""

import json

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cluster.models import Cluster, Event, Interface, Node, NodeInterface

pytestmark = pytest.mark.django_db


def make_nodes(count):
    Cluster.objects.update_or_create(pk=1, defaults={"mode": "clustering", "shared_address": "10.9.0.90"})
    for n in range(1, count + 1):
        Node.objects.create(number=n, address=f"10.9.0.{n}", ssh_user="u", host_key="ssh-ed25519 AAAA", is_admin=n == 1)


def test_choosing_clustering_makes_ha_mode_unavailable(admin_client):
    response = admin_client.post(reverse("ha_clustering"), {"mode": "clustering"})
    assert response.status_code == 302 and response["Location"] == reverse("cluster_control")
    response = admin_client.post(reverse("ha_clustering"), {"mode": "ha"})
    assert response.status_code == 400
    assert "Clustering is already configured; the other mode is unavailable." in response.content.decode()
    assert Cluster.get().mode == "clustering"
    page = admin_client.get(reverse("ha_clustering")).content.decode()
    assert 'value="ha" disabled' in page
    assert Event.objects.filter(message__startswith="Clustering selected under HA and Clustering by admin").exists()


def test_choosing_ha_mode_makes_clustering_unavailable(admin_client):
    admin_client.post(reverse("ha_clustering"), {"mode": "ha"})
    assert admin_client.post(reverse("ha_clustering"), {"mode": "clustering"}).status_code == 400
    assert Cluster.get().mode == "ha"


def test_confirm_without_a_choice_is_refused(admin_client):
    response = admin_client.post(reverse("ha_clustering"), {})
    assert response.status_code == 400
    assert "Select HA Mode or Clustering" in response.content.decode()


def test_the_live_table_is_a_fragment_for_htmx_and_polls(admin_client):
    make_nodes(2)
    fragment = admin_client.get(reverse("cluster_control"), headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="live"')
    assert 'hx-trigger="every 1s"' in fragment
    assert 'data-node="2" data-status="disabled"' in fragment


def test_the_table_costs_the_same_queries_with_64_nodes_as_with_4(admin_client):
    make_nodes(4)
    with CaptureQueriesContext(connection) as four:
        admin_client.get(reverse("cluster_control"))
    Node.objects.all().delete()
    make_nodes(64)
    with CaptureQueriesContext(connection) as many:
        page = admin_client.get(reverse("cluster_control")).content.decode()
    assert page.count("data-node=") == 64
    assert len(many) == len(four)


def test_the_interface_address_is_shown_in_brackets_when_it_differs(admin_client):
    make_nodes(2)
    eth1 = Interface.objects.create(index=1, name="eth1", use_for_cluster_checks=True)
    NodeInterface.objects.create(node=Node.objects.get(number=2), interface=eth1, address="10.9.1.2/24")
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "10.9.0.2 (10.9.1.2)" in page


def test_an_unknown_operation_is_not_found(admin_client):
    make_nodes(2)
    node = Node.objects.get(number=2)
    assert admin_client.post(reverse("node_action", args=[node.pk, "explode"])).status_code == 404
    assert admin_client.post(reverse("set_parameter", args=["colour"]), {"colour": "1"}).status_code == 404


@override_settings(ROOT_URLCONF="nodes.urls", FLOTILLA_ROLE="node")
@pytest.mark.parametrize(
    "body,status,error",
    [
        (b"not json", 400, "expected JSON with a join code"),
        (json.dumps({"nocode": 1}).encode(), 400, "expected JSON with a join code"),
        (json.dumps({"code": "ABCD-EFGH"}).encode(), 409, "not waiting to join"),
        (b"{" + b" " * 9000 + b"}", 413, "request too large"),
    ],
)
def test_the_join_endpoint_refuses_bad_requests(client, tmp_path, monkeypatch, body, status, error):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    response = client.post("/cluster/join", body, content_type="application/json")
    assert response.status_code == status
    assert error in response.json()["error"]
    assert not (tmp_path / "membership.json").exists()

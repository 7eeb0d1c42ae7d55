import json

import pytest
from django.urls import reverse

from cluster.membership import rules as membership
from cluster.models import JoinRequest, Node, VirtualService
from tests.conftest import wait_until

SHARED = "127.0.11.90"


@pytest.fixture
def cluster_on_node1(units, transactional_db, celery_worker):
    """A cluster in the test database whose admin is unit 1, as Create New Cluster leaves it."""
    unit = units.node(1)
    unit.agent("membership", "admin", SHARED)
    membership.create_cluster(SHARED, unit.agent("facts"), unit.address)
    return units


def add(client, unit, settle=True, **extra):
    """Add New Node with the code the unit shows after Add to Cluster; returns the finished request."""
    code = extra.pop("code", None) or unit.agent("offer-join")["code"]
    response = client.post(reverse("add_node"), {"address": unit.address, "code": code, **extra})
    assert response.status_code == 302, response.content.decode()
    join = wait_until(
        lambda: JoinRequest.objects.filter(address=unit.address).exclude(state=JoinRequest.State.PENDING).first(), 20
    )
    if settle:
        unit.settle()  # the reboot that finishes the conversion
    return join


def add_enabled(client, unit):
    join = add(client, unit)
    assert join.state == JoinRequest.State.DONE, join.message
    node = Node.objects.get(address=unit.address)
    client.post(reverse("node_action", args=[node.pk, "enable"]))
    return node


def add_all_enabled(client, units):
    """Add and enable these units, in order (node numbers follow it), their reboots overlapping."""
    joins = [add(client, unit, settle=False) for unit in units]
    for unit in units:
        unit.settle()
    nodes = []
    for unit, join in zip(units, joins, strict=True):
        assert join.state == JoinRequest.State.DONE, join.message
        node = Node.objects.get(address=unit.address)
        client.post(reverse("node_action", args=[node.pk, "enable"]))
        nodes.append(node)
    return nodes


def with_virtual_service():
    return VirtualService.objects.get_or_create(name="web", address=SHARED, port=80)[0]


def unit_state(unit, name):
    try:
        return json.loads((unit.home / name).read_text())
    except (OSError, ValueError):
        return {}

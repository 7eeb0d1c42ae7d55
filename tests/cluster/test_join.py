"""Add New Node against real units: the one-time code, the pinned key, the refusals."""

import json
import ssl

import pytest
from django.test import override_settings
from django.urls import reverse

from cluster.membership.rules import node_rows
from cluster.membership.status import Status
from cluster.models import Event, JoinRequest, Node
from nodes.agent.formats import tls_fingerprint
from tests.harness import WUI_PORT
from tests.helpers import add, unit_state, wait_until

pytestmark = pytest.mark.usefixtures("cluster_on_node1")


def test_a_unit_waiting_to_join_is_added_disabled_with_its_host_key_pinned(admin_client, units):
    unit = units.node(2)
    join = add(admin_client, unit)
    assert join.state == JoinRequest.State.DONE, join.message
    node = Node.objects.get(address=unit.address)
    assert node.number == 2
    assert node.host_key == unit.host_key_line
    # The certificate its WUI presents is pinned too, as the host key is.
    served = ssl.get_server_certificate((unit.address, WUI_PORT))
    assert node.tls_fingerprint == tls_fingerprint(ssl.PEM_cert_to_DER_cert(served)) != ""
    assert not node.enabled
    _, rows, _ = node_rows()
    assert [r["status"] for r in rows] == [Status.ADMIN, Status.DISABLED]
    assert wait_until(lambda: unit_state(unit, "membership.json").get("mode") == "member")
    assert Event.objects.filter(message__startswith=f"Node 2 ({unit.address}) added by admin").exists()
    assert join.code == "" and JoinRequest.objects.get(pk=join.pk).code == ""  # the code is not kept


def test_a_unit_that_is_not_waiting_is_refused(admin_client, units):
    join = add(admin_client, units.node(2), code="ABCD-EFGH")
    assert join.state == JoinRequest.State.REFUSED
    assert "not waiting to join" in join.message
    assert not Node.objects.filter(address=units.node(2).address).exists()


def test_a_wrong_code_is_refused_and_the_unit_stays_standalone(admin_client, units):
    unit = units.node(2)
    unit.agent("offer-join")
    join = add(admin_client, unit, code="WRON-GCOD")
    assert join.state == JoinRequest.State.REFUSED
    assert join.message == "the join code is wrong"
    assert unit_state(unit, "membership.json").get("mode", "standalone") == "standalone"
    assert Node.objects.count() == 1


def test_an_expired_code_is_refused(admin_client, units):
    unit = units.node(3)
    offer = unit.agent("offer-join")
    path = unit.home / "join.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "expires_at": offer["expires_at"] - 601}))
    join = add(admin_client, unit, code=offer["code"])
    assert join.state == JoinRequest.State.REFUSED
    assert "expired" in join.message


def test_a_fingerprint_that_does_not_match_the_units_host_key_is_refused(admin_client, units):
    join = add(admin_client, units.node(2), fingerprint="SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert join.state == JoinRequest.State.REFUSED
    assert "host key changed" in join.message
    assert unit_state(units.node(2), "membership.json").get("mode", "standalone") == "standalone"


def test_different_hardware_is_refused_with_the_differences_listed(admin_client, units):
    unit = units.node(4)
    described = json.loads((unit.home / "node.json").read_text())
    (unit.home / "node.json").write_text(json.dumps({**described, "hardware": {"memory_mib": 1024, "cpu_count": 64}}))
    join = add(admin_client, unit)
    assert join.state == JoinRequest.State.REFUSED
    assert "hardware differs" in join.message
    assert "memory (MiB): cluster" in join.message and "node 1024" in join.message
    assert "CPUs: cluster" in join.message and "node 64" in join.message
    assert unit_state(unit, "membership.json").get("mode", "standalone") == "standalone"


def test_the_licence_limit_is_enforced_at_add(admin_client, units):
    with override_settings(LICENSE_MAX_NODES=1):
        response = admin_client.post(reverse("add_node"), {"address": units.node(2).address, "code": "ABCD-EFGH"})
    assert response.status_code == 400
    assert "The licence allows at most 1 nodes" in response.content.decode()
    assert not JoinRequest.objects.exists()


def test_a_member_cannot_be_added_twice(admin_client, units):
    response = admin_client.post(reverse("add_node"), {"address": units.node(1).address, "code": "ABCD-EFGH"})
    assert response.status_code == 400
    assert "already a member of this cluster" in response.content.decode()


@pytest.mark.parametrize(
    "address,code,message",
    [
        ("not-an-ip", "ABCD-EFGH", "Address: enter the node&#x27;s IPv4 address"),
        ("127.0.11.2", "", "Join code: enter the code the node shows after Add to Cluster"),
    ],
)
def test_bad_input_on_add_new_node_is_refused_with_the_reason(admin_client, address, code, message):
    response = admin_client.post(reverse("add_node"), {"address": address, "code": code})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not JoinRequest.objects.exists()


def test_five_wrong_codes_withdraw_the_offer(admin_client, units):
    unit = units.node(2)
    offer = unit.agent("offer-join")
    for _ in range(5):
        assert add(admin_client, unit, code="WRON-GCOD").message == "the join code is wrong"
        JoinRequest.objects.all().delete()
    join = add(admin_client, unit, code=offer["code"])
    assert join.state == JoinRequest.State.REFUSED
    assert "not waiting to join" in join.message

"""Enable, disable, delete, parameters and health against real units and a real worker."""

import copy
import json
import threading
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cluster import events, ssh
from cluster.membership import rules as membership
from cluster.membership.rules import node_rows
from cluster.membership.status import Status, cluster_facts, node_status, warm_up_start
from cluster.models import Cluster, ConfigGeneration, Event, Node
from tests.helpers import SHARED, add, add_enabled, unit_state, wait_until, with_virtual_service

pytestmark = pytest.mark.usefixtures("cluster_on_node1")


def status_of(address, after=0):
    _, rows, _ = node_rows(timezone.now() + timedelta(seconds=after))
    return next(r["status"] for r in rows if r["node"].address == address)


def test_enable_takes_a_node_into_rotation_only_after_30_seconds_up(admin_client, units, settings):
    settings.NODE_WARMUP_SECONDS = 30
    with_virtual_service()
    unit = units.node(2)
    node = add_enabled(admin_client, unit)
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is True, 15)
    # A health round has noted the Virtual Service and the node's good answer since Enable, in which it
    # says it takes new connections (Enable's own write comes before that answer).
    node = wait_until(
        lambda: (
            Cluster.get().services_since and (n := Node.objects.get(pk=node.pk)).healthy_since and n.accepting and n
        ),
        10,
    )
    assert status_of(unit.address) == Status.STARTING

    # The clock moves on, the node's checks answering all along: an injected clock over the node's
    # own row, never a write to it while the health round writes it too.
    def status_at(moment):
        cluster, answered = Cluster.get(), copy.copy(node)
        answered.last_ok_at = answered.checked_at = moment
        facts = cluster_facts(cluster, True, moment)
        return node_status(answered, moment, cluster.drain_time, True, **facts)

    start = warm_up_start(node)
    assert status_at(start + timedelta(seconds=29, milliseconds=999)) == Status.STARTING
    assert status_at(start + timedelta(seconds=30)) == Status.UP


def test_disable_drains_for_the_drain_time_tells_the_node_then_shows_disabled(admin_client, units):
    with_virtual_service()
    unit = units.node(2)
    node = add_enabled(admin_client, unit)
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is True, 15)
    response = admin_client.post(reverse("node_action", args=[node.pk, "disable"]), follow=True)
    assert "Node 2 disabled: draining." in response.content.decode()
    assert status_of(unit.address) == Status.DRAINING
    assert status_of(unit.address, after=10) == Status.DISABLED
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is False, 10)
    assert Event.objects.filter(message__startswith="Node 2 disabled (draining for 10 s) by admin").exists()


def test_a_node_can_be_deleted_only_when_disabled_and_then_becomes_standalone(admin_client, units):
    with_virtual_service()
    unit = units.node(3)
    node = add_enabled(admin_client, unit)
    response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]))
    assert response.status_code == 400
    assert "only a Disabled node can be deleted" in response.content.decode()
    admin_client.post(reverse("node_action", args=[node.pk, "disable"]))
    response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]))
    assert f"Node {node.number} is Draining: only a Disabled node can be deleted" in response.content.decode()
    Node.objects.filter(pk=node.pk).update(disabled_at=timezone.now() - timedelta(seconds=11))
    response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]), follow=True)
    assert f"Node {node.number} is being deleted." in response.content.decode()
    wait_until(lambda: not Node.objects.filter(pk=node.pk).exists(), 15)
    assert wait_until(lambda: unit_state(unit, "membership.json").get("mode") == "standalone")
    message = f"Node {node.number} ({unit.address}) deleted by admin: it is now a standalone unit"
    assert Event.objects.filter(message=message).exists()
    unit.settle()  # a unit that leaves reboots: ask it once it is back
    with pytest.raises(ssh.AuthenticationFailed):  # the unit forgot the cluster's key
        ssh.Pool(ssh.load_or_create_key(ssh_key_path())).call(node.target, "status")


def test_a_deleted_node_added_again_gets_the_whole_current_configuration(admin_client, units):
    unit = units.node(2)
    node = add_enabled(admin_client, unit)
    admin_client.post(reverse("node_action", args=[node.pk, "disable"]))
    Node.objects.filter(pk=node.pk).update(disabled_at=timezone.now() - timedelta(seconds=11))
    admin_client.post(reverse("node_action", args=[node.pk, "delete"]))
    wait_until(lambda: not Node.objects.filter(pk=node.pk).exists(), 15)
    admin_client.post(reverse("set_parameter", args=["virtual_id"]), {"virtual_id": "42"})
    wait_until(lambda: unit_state(unit, "membership.json").get("mode") == "standalone", 15)
    unit.settle()
    join = add(admin_client, unit)
    assert join.state == "done", join.message

    def newest_applied():
        newest = ConfigGeneration.objects.order_by("-number").first().number
        return unit_state(unit, "config.json").get("generation") == newest

    config = wait_until(newest_applied, 15)
    assert config and unit_state(unit, "config.json")["config"]["cluster"]["virtual_id"] == 42


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("virtual_id", "0", "Valid Values: 1-255"),
        ("virtual_id", "256", "Valid Values: 1-255"),
        ("virtual_id", "one", "Valid Values: 1-255"),
        ("drain_time", "601", "Valid Values: 1-600"),
        ("drain_time", "", "Valid Values: 1-600"),
    ],
)
def test_cluster_parameters_out_of_range_are_refused_and_change_nothing(admin_client, field, value, message):
    before = ConfigGeneration.objects.count()
    response = admin_client.post(reverse("set_parameter", args=[field]), {field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    cluster = Cluster.get()
    assert (cluster.virtual_id, cluster.drain_time) == (1, 10)
    assert ConfigGeneration.objects.count() == before


def test_cluster_parameters_propagate_to_every_node(admin_client, units):
    add(admin_client, units.node(2))
    admin_client.post(reverse("set_parameter", args=["virtual_id"]), {"virtual_id": "7"})
    admin_client.post(reverse("set_parameter", args=["drain_time"]), {"drain_time": "20"})
    assert (Cluster.get().virtual_id, Cluster.get().drain_time) == (7, 20)

    def applied(unit):
        return unit_state(unit, "config.json").get("config", {}).get("cluster", {})

    for unit in (units.node(1), units.node(2)):
        wait_until(lambda u=unit: applied(u) == {"shared_address": SHARED, "virtual_id": 7, "drain_time": 20}, 15)
    assert Event.objects.filter(message__startswith="Node Drain Time changed from 10 to 20 by admin").exists()


def test_a_killed_node_shows_down_and_comes_back_alive(admin_client, units):
    with_virtual_service()
    unit = units.node(3)
    node = add_enabled(admin_client, unit)
    wait_until(lambda: status_of(unit.address) == Status.STARTING, 15)
    alive_before = Event.objects.filter(message=f"Node {node.number} now alive").count()
    unit.stop()
    wait_until(lambda: status_of(unit.address) == Status.DOWN, 5)
    dead = f"Node {node.number} now dead"
    assert wait_until(lambda: Event.objects.filter(message=dead, level="warning").exists(), 5)
    assert Event.objects.filter(message="Cluster running on only 1 of 2 nodes", level="warning").exists()
    unit.start()
    wait_until(lambda: status_of(unit.address) == Status.STARTING, 10)
    alive = f"Node {node.number} now alive"
    assert wait_until(lambda: Event.objects.filter(message=alive).count() > alive_before, 5)


def test_a_disabled_node_stays_out_of_rotation_across_its_reboot(admin_client, units):
    with_virtual_service()
    unit = units.node(2)
    node = add_enabled(admin_client, unit)
    admin_client.post(reverse("node_action", args=[node.pk, "disable"]))
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is False, 10)
    unit.restart()
    assert unit_state(unit, "traffic.json")["accepting"] is False  # comes back taking no traffic
    wait_until(lambda: Node.objects.get(pk=node.pk).booted_at == unit_state(unit, "traffic.json")["booted_at"], 10)
    assert unit_state(unit, "traffic.json")["accepting"] is False
    assert status_of(unit.address, after=60) == Status.DISABLED


def test_an_enabled_node_rejoins_rotation_only_once_the_control_plane_confirms(admin_client, units):
    with_virtual_service()
    unit = units.node(2)
    add_enabled(admin_client, unit)
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is True, 15)
    unit.restart()
    wait_until(lambda: unit_state(unit, "traffic.json").get("accepting") is True, 10)

    # The unit's own log, newest first: it booted taking nothing, then was told to take traffic.
    # (The agent writes its state file, then its log line: give the line a moment to follow.)
    def told_after_boot():
        messages = [line["message"] for line in json_lines(unit.home / "node.log")][::-1]
        return messages.index("Taking new connections") < messages.index("Unit started (version 1.0.0)")

    assert wait_until(told_after_boot, 2)


def json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_operators_disabling_the_same_node_leave_one_consistent_result(admin_client, admin_user, units):
    node = add_enabled(admin_client, units.node(2))
    outcomes = []

    def disable():
        try:
            membership.disable(node.pk, events.Actor(admin_user, "127.0.0.1"))
            outcomes.append("disabled")
        except membership.Refused as exc:
            outcomes.append(str(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=disable) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["Node 2 is already disabled", "disabled"]
    assert Event.objects.filter(message__startswith="Node 2 disabled").count() == 1


def test_every_operation_is_in_the_audit_log_with_user_and_address(admin_client, units):
    node = add_enabled(admin_client, units.node(2))
    entry = LogEntry.objects.get_for_object(node).filter(changes__icontains="enabled").first()
    assert entry.actor.username == "admin"
    assert entry.remote_addr == "127.0.0.1"
    assert entry.changes_dict["enabled"] == ["False", "True"]


def test_fewer_than_three_enabled_nodes_shows_the_warning(admin_client):
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "A cluster needs at least three enabled nodes; four are recommended." in page


def ssh_key_path():
    from django.conf import settings

    return settings.CLUSTER_SSH_KEY


def test_a_join_and_a_delete_carried_out_by_the_worker_are_the_operators_in_the_audit_log(admin_client, units):
    unit = units.node(2)
    join = add(admin_client, unit)
    created = LogEntry.objects.get_for_object(Node.objects.get(pk=join.node_id)).get(action=LogEntry.Action.CREATE)
    assert (created.actor.username, created.remote_addr) == ("admin", "127.0.0.1")
    wait_until(lambda: status_of(unit.address) == Status.DISABLED, 15)
    node_pk = join.node_id
    assert admin_client.post(reverse("node_action", args=[node_pk, "delete"])).status_code == 302
    wait_until(lambda: not Node.objects.filter(pk=node_pk).exists(), 20)
    unit.settle()  # the reboot that ends the delete
    deleted = LogEntry.objects.get_for_model(Node).get(object_pk=str(node_pk), action=LogEntry.Action.DELETE)
    assert (deleted.actor.username, deleted.remote_addr) == ("admin", "127.0.0.1")

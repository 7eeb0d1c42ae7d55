"""One node out at a time: from the moment a node is told to reboot until it is Up again on its new boot."""

import html
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from cluster import clock as control_clock
from cluster.membership.rules import node_rows
from cluster.membership.status import Status, answering
from cluster.models import Cluster, Event, Node, Rollout, RolloutNode, VirtualService
from tests.helpers import (
    NEW,
    add_all_enabled,
    all_up,
    build,
    in_warm_up,
    install,
    past_warm_up,
    reboot,
    reboot_order,
    roll,
    set_drain_time,
    settled_rollout,
    start_rolling,
    unit_state,
    version_of,
    wait_until,
    with_virtual_service,
)


def clock(moment):
    return timezone.localtime(moment).strftime("%H:%M:%S")


def status_of(number):
    return next(r for r in node_rows()[1] if r["node"].number == number)["status"]


def serving_count():
    """Nodes taking traffic now: the admin node while it answers, the others while Up."""
    now = control_clock.now()
    rows = node_rows(now)[1]
    return sum(
        1 for r in rows if r["status"] == Status.UP or (r["status"] == Status.ADMIN and answering(r["node"], now))
    )


def marked(number):
    return RolloutNode.objects.filter(node__number=number).exclude(reboot_requested_at=None).first()


def refusal(response):
    """What the operator is told: the page's error messages."""
    pattern = r'<(?:p|div)[^>]*(?:role="alert"|class="message[^"]*error)[^>]*>(.*?)</(?:p|div)>'
    found = re.findall(pattern, response.content.decode(), re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)) for text in found)


# --- the real cluster ------------------------------------------------------------------------


@pytest.fixture
def three(admin_client, units):
    """Node 1 the admin, nodes 2 and 3 enabled and Up, one Virtual Service: the smallest cluster."""
    with_virtual_service()
    add_all_enabled(admin_client, [units.node(n) for n in (2, 3)])
    for n in (2, 3):
        wait_until(lambda n=n: unit_state(units.node(n), "traffic.json").get("accepting") is True, 15)
    all_up()
    return units


@pytest.mark.usefixtures("cluster_on_node1")
def test_a_three_node_cluster_never_drops_to_one_serving_node(admin_client, three, key, tmp_path):
    install(admin_client, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    all_up()

    def serving():
        assert serving_count() >= 2, [(r["node"].number, r["status"]) for r in node_rows()[1]]
        return True

    assert "Node 2 is rebooting to run the new software" in reboot(admin_client, 2).content.decode()
    since = clock(marked(2).reboot_requested_at)
    # A second later node 2 may not even show Down yet: it is out all the same.
    refused = reboot(admin_client, 3)
    assert refused.status_code == 400
    assert (
        f"Node 2 is still out: rebooting since {since}. One node is out at a time: reboot Node 3 once it is back"
        in refusal(refused)
    )
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert f"One node out at a time: Node 2 is still out: rebooting since {since}." in page

    # Back on the new version, but in its warm-up: still out.
    wait_until(lambda: serving() and version_of(2) == NEW and status_of(2) == Status.STARTING, 30)
    refused = reboot(admin_client, 3)
    assert re.search(r"Node 2 is Starting \(\d+ s left\)\. One node is out at a time", refusal(refused)), refusal(
        refused
    )
    assert reboot_order_of_operators() == [2]

    past_warm_up(2)
    wait_until(lambda: serving() and marked(2) is None, 15)  # Up again: its mark goes
    assert "Node 3 is rebooting to run the new software" in reboot(admin_client, 3).content.decode()
    three.node(2).settle()

    # The admin node's Reboot while node 3 is back on the new version but still Starting.
    wait_until(lambda: serving() and version_of(3) == NEW and status_of(3) == Status.STARTING, 30)
    refused = reboot(admin_client, 1)
    assert re.search(r"Node 3 is Starting \(\d+ s left\)\. One node is out at a time: reboot Node 1", refusal(refused))
    past_warm_up(3)
    wait_until(lambda: serving() and status_of(3) == Status.UP, 15)
    assert "Node 1 is rebooting to run the new software" in reboot(admin_client, 1).content.decode()
    wait_until(lambda: Rollout.objects.get().state == Rollout.State.DONE, 30)
    wait_until(lambda: not RolloutNode.objects.exclude(reboot_requested_at=None).exists(), 15)
    assert reboot_order_of_operators() == [2, 3, 1]
    three.node(1).settle()


def reboot_order_of_operators():
    """The nodes whose Reboot was accepted, in order."""
    return [
        e.node_number for e in Event.objects.filter(message__contains="rebooted to run version").order_by("time", "id")
    ]


@pytest.mark.usefixtures("cluster_on_node1", "four")
def test_two_operators_rebooting_two_nodes_at_once_take_one_node_out(admin_user, units, key, tmp_path):
    first = Client()
    first.force_login(admin_user)
    install(first, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    all_up()
    start = threading.Barrier(2)
    answers = {}

    def operator(number):
        client = Client()
        client.force_login(admin_user)
        try:
            start.wait()
            answers[number] = reboot(client, number)
        finally:
            connection.close()

    threads = [threading.Thread(target=operator, args=(n,)) for n in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    accepted = [
        n for n, response in answers.items() if "is rebooting to run the new software" in response.content.decode()
    ]
    assert len(accepted) == 1, {n: refusal(r) for n, r in answers.items()}
    (other,) = {2, 3} - set(accepted)
    assert f"Node {accepted[0]} is still out: rebooting since" in refusal(answers[other])
    assert reboot_order_of_operators() == accepted
    wait_until(lambda: version_of(accepted[0]) == NEW, 30)
    units.node(accepted[0]).settle()


@pytest.mark.usefixtures("cluster_on_node1", "four")
def test_a_rolling_reboot_waits_for_a_node_that_is_out_before_it_takes_the_next(admin_client, units, key, tmp_path):
    set_drain_time(1)
    install(admin_client, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    start_rolling(admin_client)

    def node_2_warms_up():
        update = Rollout.objects.get()
        warming = update.current_id and update.current.number == 2 and update.step == Rollout.Step.WARMING
        return warming and in_warm_up(node_rows()).get(2)

    # Node 2 back on its new boot, Starting: the rolling reboot waits for it to be Up.
    wait_until(node_2_warms_up, 60, message=lambda: str(Rollout.objects.values().get()))
    booted = Node.objects.get(number=4).booted_at
    # An unplanned restart while node 2 is out: node 4 is off when node 2's warm-up ends...
    units.node(4).stop()
    past_warm_up(2)
    # ... and comes back Starting, on a warm-up of its own that began after node 2's ended.
    units.node(4).start()

    def node_3_waits():
        update = Rollout.objects.get()
        return "Node 3 waits: Node 4 is Starting (" in update.message and update

    wait_until(lambda: Node.objects.get(number=4).booted_at != booted, 15)
    update = wait_until(node_3_waits, 60, message=lambda: str(Rollout.objects.values().get()))
    assert update.state == Rollout.State.ROLLING and update.step == Rollout.Step.NONE
    assert reboot_order() == [2]
    assert not Node.objects.get(number=3).maintenance_since  # still serving
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "Node 3 waits: Node 4 is Starting (" in page

    past_warm_up(4)
    update = roll(admin_client, units)
    assert update.state == Rollout.State.DONE, update.message
    # Node 4's own restart activated the version it had installed: nothing left to reboot it for.
    assert reboot_order() == [2, 3, 1]
    assert all(n.version == NEW for n in Node.objects.all())
    assert not RolloutNode.objects.exclude(reboot_requested_at=None).exists()


# --- the rule, with a clock -----------------------------------------------------------------------


T = timezone.now().replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def installed(db, settings):
    """Three answering nodes (1 the admin) of a cluster with a Virtual Service; version 1.1.0 installed."""
    settings.NODE_WARMUP_SECONDS = 30
    Cluster.objects.create(
        pk=1, mode="clustering", shared_address="127.0.11.90", created_at=T, services_since=T - timedelta(minutes=5)
    )
    VirtualService.objects.create(name="web", address="127.0.11.90", port=80)
    nodes = [
        Node.objects.create(
            number=n,
            address=f"127.0.11.{n}",
            ssh_user=f"u{n}",
            host_key="ssh-ed25519 AAAA",
            is_admin=n == 1,
            enabled=True,
            accepting=True,
            version="1.0.0",
            booted_at=100.0 + n,
            last_ok_at=T,
            checked_at=T,
            healthy_since=T - timedelta(minutes=5),
        )
        for n in (1, 2, 3)
    ]
    rollout = Rollout.objects.create(version="1.1.0", state=Rollout.State.INSTALLED)
    for node in nodes:
        RolloutNode.objects.create(rollout=rollout, node=node, state=RolloutNode.State.INSTALLED)
    return rollout


def answered(number, at, **facts):
    Node.objects.filter(number=number).update(last_ok_at=at, checked_at=at, **facts)


def others_answer(at, but=2):
    Node.objects.exclude(number=but).update(last_ok_at=at, checked_at=at)


def test_a_node_is_out_from_its_reboot_request_until_it_is_up_again_on_its_new_boot(installed):
    node2, node3 = Node.objects.get(number=2), Node.objects.get(number=3)
    assert installed.out(T) is None
    RolloutNode.objects.filter(node=node2).update(reboot_requested_at=T, reboot_sent_at=T, booted_before=102.0)
    # Still answering on its old boot, a second after the request: out.
    answered(2, T + timedelta(seconds=1))
    others_answer(T + timedelta(seconds=1))
    rebooting = f"Node 2 is still out: rebooting since {clock(T)}"
    assert installed.out(T + timedelta(seconds=1)) == rebooting
    assert installed.out(T + timedelta(seconds=1), exclude=node3) == rebooting
    assert installed.out(T + timedelta(seconds=1), exclude=node2) == rebooting  # not told to reboot twice
    # Down: out.
    Node.objects.filter(number=2).update(failures=1)
    others_answer(T + timedelta(seconds=4))
    assert installed.out(T + timedelta(seconds=4)) == rebooting
    # Back on a new boot, in its warm-up: out, with the seconds left.
    back = T + timedelta(seconds=6)
    answered(2, back, failures=0, booted_at=202.0, healthy_since=back)
    answered(2, back + timedelta(seconds=18))
    others_answer(back + timedelta(seconds=18))
    assert installed.out(back + timedelta(seconds=18)) == "Node 2 is Starting (12 s left)"
    # Up: no longer out.
    up = back + timedelta(seconds=30)
    for n in (1, 2, 3):
        answered(n, up)
    assert installed.out(up) is None


def test_a_serving_node_that_is_not_up_is_out_and_the_node_to_reboot_does_not_count_itself(installed):
    node3 = Node.objects.get(number=3)
    now = T + timedelta(seconds=10)
    for n in (1, 2):
        answered(n, now)
    answered(3, now, healthy_since=now - timedelta(seconds=5))
    assert installed.out(now) == "Node 3 is Starting (25 s left)"
    assert installed.out(now, exclude=node3) is None
    answered(3, now - timedelta(seconds=4))
    assert installed.out(now) == "Node 3 is Down"
    answered(3, now)
    answered(1, now - timedelta(seconds=4))  # the admin node is not answering
    assert installed.out(now, exclude=node3) == "Node 1 is Down"
    # An operator disabled node takes no traffic: it is not counted.
    answered(1, now)
    Node.objects.filter(number=3).update(enabled=False, disabled_at=T, last_ok_at=T)
    assert installed.out(now) is None

"""When a node may come into rotation, and when its silence is not yet Down.

The seed: "When a node is enabled, it will not be immediately brought into rotation. It will
only come online after it has been up for 30 seconds." The 30 s count from the moment the node
became eligible: Enable, its return from Down, a reboot, the cluster's first Virtual Service.
Health answers are recorded by the real health round code with an injected clock, never a sleep.
"""

from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from cluster import events, ssh
from cluster.membership import health
from cluster.membership import rules as membership
from cluster.membership.rules import node_rows
from cluster.membership.status import Status, answering
from cluster.models import Cluster, Event, Node, VirtualService
from tests.helpers import add_all_enabled, wait_until, with_virtual_service

BOOT = 1_000.0
ANSWER = {"mode": "member", "accepting": True, "active_connections": 0, "booted_at": BOOT, "generation": 0}


def s(n):
    return timedelta(seconds=n)


@pytest.fixture
def operator(admin_user):
    return events.Actor(admin_user, "192.0.2.10")


def member(**fields):
    return Node.objects.create(number=2, address="10.0.0.2", ssh_user="flotilla", host_key="", **fields)


def answer(node, now, **report):
    """One health check answered at ``now``, recorded as the health round records it."""
    health.record(Node.objects.get(pk=node.pk), {**ANSWER, **report}, now)


def row(node, now):
    _, rows, _ = node_rows(now)
    found = next(r for r in rows if r["node"].pk == node.pk)
    return found["status"], found["warm_up_left"]


def services_long_ago(now):
    """A Virtual Service that the health round noted well before the test's moments."""
    Cluster.get()
    VirtualService.objects.create(name="web", address="10.0.0.90", port=80)
    health.log_transitions(now - s(600))


def test_a_node_enabled_long_after_it_joined_starts_its_warm_up_at_enable(db, operator, admin_client):
    start = timezone.now()
    services_long_ago(start)
    node = member()
    for ago in (120, 60, 1):  # joined two minutes ago and answering ever since, Disabled
        answer(node, start - s(ago))
    assert row(node, start)[0] == Status.DISABLED

    round_copy = Node.objects.get(pk=node.pk)  # a health round read the row just before the Enable
    membership.enable(node.pk, operator)
    enabled = Node.objects.get(pk=node.pk).enabled_at
    health.record(round_copy, ANSWER, enabled + s(1))  # ...and records its answer just after it

    assert row(node, enabled + s(1)) == (Status.STARTING, 29)
    answer(node, enabled + s(29))
    assert row(node, enabled + s(29)) == (Status.STARTING, 1)
    answer(node, enabled + s(30))
    assert row(node, enabled + s(30)) == (Status.UP, None)


def test_the_row_says_how_long_the_warm_up_still_runs(db, operator, admin_client):
    services_long_ago(timezone.now())
    node = member()
    answer(node, timezone.now() - s(60))
    membership.enable(node.pk, operator)
    answer(node, timezone.now())
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert 'data-status="starting"' in page
    assert any(f'Starting <span class="warm-up-left">({n} s left)</span>' in page for n in (30, 29, 28))


def test_a_node_is_starting_not_up_right_after_the_first_virtual_service_appears(db):
    start = timezone.now()
    node = member(enabled=True)
    answer(node, start - s(60))
    answer(node, start)
    Cluster.get()
    health.log_transitions(start)
    assert row(node, start)[0] == Status.DISABLED  # no Virtual Service: every node shows Disabled

    VirtualService.objects.create(name="web", address="10.0.0.90", port=80)
    # Before any health round has seen it: the page already counts the warm-up from now.
    assert row(node, start) == (Status.STARTING, 30)

    health.log_transitions(start + s(1))  # the next round notes when it appeared
    assert Cluster.objects.get().services_since == start + s(1)
    assert Event.objects.filter(message="Node 2 now alive").exists()
    answer(node, start + s(30))
    health.log_transitions(start + s(30))
    assert row(node, start + s(30)) == (Status.STARTING, 1)
    assert not Event.objects.filter(message="Node 2 now in rotation").exists()
    answer(node, start + s(31))
    health.log_transitions(start + s(31))
    assert row(node, start + s(31))[0] == Status.UP
    assert Event.objects.filter(message="Node 2 now in rotation").exists()


def test_without_virtual_services_the_first_one_is_noted_again_when_it_reappears(db):
    start = timezone.now()
    services_long_ago(start)
    assert Cluster.objects.get().services_since == start - s(600)
    VirtualService.objects.all().delete()
    health.log_transitions(start)
    assert Cluster.objects.get().services_since is None
    VirtualService.objects.create(name="api", address="10.0.0.91", port=443)
    health.log_transitions(start + s(5))
    assert Cluster.objects.get().services_since == start + s(5)


def test_a_rebooted_node_restarts_its_warm_up(db):
    start = timezone.now()
    services_long_ago(start)
    node = member(enabled=True)
    answer(node, start - s(60))
    answer(node, start)
    assert row(node, start)[0] == Status.UP

    # Back between two checks, too quickly to be seen Down: only its boot time tells.
    answer(node, start + s(1), booted_at=BOOT + 61)
    assert row(node, start + s(1)) == (Status.STARTING, 30)
    answer(node, start + s(30), booted_at=BOOT + 61)
    assert row(node, start + s(30)) == (Status.STARTING, 1)
    answer(node, start + s(31), booted_at=BOOT + 61)
    assert row(node, start + s(31))[0] == Status.UP


def test_a_node_back_from_down_restarts_its_warm_up(db):
    start = timezone.now()
    services_long_ago(start)
    node = member(enabled=True)
    answer(node, start - s(60))
    answer(node, start)
    health.record(Node.objects.get(pk=node.pk), ssh.CommandTimeout(node.target, "no answer"), start + s(1))
    assert row(node, start + s(1))[0] == Status.DOWN
    answer(node, start + s(2))
    assert row(node, start + s(2)) == (Status.STARTING, 30)
    answer(node, start + s(32))
    assert row(node, start + s(32))[0] == Status.UP


# --- a restart of the control plane -------------------------------------------------------------

OUTAGE = timedelta(seconds=60)  # how long the admin node took to reboot


def test_a_restarted_control_plane_shows_checking_never_down_and_logs_no_death(
    admin_client, units, celery_worker, cluster_on_node1
):
    with_virtual_service()
    members = add_all_enabled(admin_client, [units.node(n) for n in (2, 3)])
    wait_until(lambda: all(answering(Node.objects.get(pk=m.pk), timezone.now()) for m in members), 20)

    celery_worker.stop()
    try:
        stopped = timezone.now()
        # The outage passes with nobody asking: every fact of the past is that much older.
        Node.objects.update(
            last_ok_at=F("last_ok_at") - OUTAGE,
            checked_at=F("checked_at") - OUTAGE,
            healthy_since=F("healthy_since") - OUTAGE,
            enabled_at=F("enabled_at") - OUTAGE,
        )
        Cluster.objects.update(services_since=F("services_since") - OUTAGE)
        before = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    finally:
        celery_worker.start()

    # Said before the first round could have run: the worker is ready only once it is written.
    checks_since = Cluster.objects.get().checks_since
    assert checks_since > stopped

    seen = []

    def every_member_heard_from():
        _, rows, _ = node_rows()
        statuses = [(r["node"].number, r["status"]) for r in rows if not r["node"].is_admin]
        seen.append(statuses)
        members_now = [r["node"] for r in rows if not r["node"].is_admin]
        return all(n.checked_at and n.checked_at > checks_since for n in members_now)

    wait_until(every_member_heard_from, 15, message=lambda: str(seen[-3:]))
    heard = timezone.now()
    # One more round, so that the round which heard them has also written its log lines.
    wait_until(lambda: all(n.checked_at > heard for n in Node.objects.filter(is_admin=False)), 10)
    every_member_heard_from()

    assert all(status in (Status.CHECKING, Status.UP) for sample in seen for _, status in sample), seen
    assert all(status == Status.UP for _, status in seen[-1]), seen[-1]  # in rotation all along: no new warm-up
    logged = list(Event.objects.filter(id__gt=before).values_list("message", flat=True))
    assert not [m for m in logged if "now dead" in m or "running on only" in m], logged

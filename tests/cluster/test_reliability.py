"""Nothing lost, nothing stranded: concurrent writers, workers killed between two steps, hung nodes."""

import hashlib
import subprocess
import threading
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest
from django.urls import reverse
from django.utils import timezone

from cluster.configuration import rules as config
from cluster.membership.status import answering
from cluster.models import Cluster, ConfigGeneration, Event, Interface, JoinRequest, Node
from tests.helpers import Worker, add, add_all_enabled, add_enabled, unit_state, wait_until

pytestmark = pytest.mark.usefixtures("cluster_on_node1")


def rendered_sha():
    return hashlib.sha256(config.canonical(config.render())).hexdigest()


def applied_sha(unit):
    return unit_state(unit, "config.json").get("sha256")


class Browser:
    """An operator's session against the live server: cookies and the CSRF token, over real HTTP."""

    def __init__(self, live_server, client):
        client.get(reverse("cluster_control"))  # sets the CSRF cookie
        self.base = live_server.url
        self.csrf = client.cookies["csrftoken"].value
        self.cookie = "; ".join(f"{k}={v.value}" for k, v in client.cookies.items())

    def post(self, path, data):
        body = urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, method="POST")
        request.add_header("Cookie", self.cookie)
        request.add_header("X-CSRFToken", self.csrf)
        request.add_header("Referer", self.base + path)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_concurrent_operators_never_lose_a_change(admin_client, live_server, units):
    member = add_enabled(admin_client, units.node(2))
    eth0 = Interface.objects.get(index=0)
    browser = Browser(live_server, admin_client)
    rounds = 8
    statuses = []

    def writers(i):
        return [
            (reverse("network_change", args=[eth0.index, "mtu"]), {"mtu": str(1400 + i)}),
            (reverse("set_parameter", args=["virtual_id"]), {"virtual_id": str(10 + i)}),
            (reverse("set_parameter", args=["drain_time"]), {"drain_time": str(20 + i)}),
            (reverse("node_action", args=[member.pk, "disable" if i % 2 == 0 else "enable"]), {}),
        ]

    for i in range(rounds):
        barrier = threading.Barrier(4)

        def write(path, data, barrier=barrier):
            barrier.wait()
            statuses.append(browser.post(path, data))

        threads = [threading.Thread(target=write, args=w) for w in writers(i)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Every change committed is in the newest generation: it says what the database says.
        assert ConfigGeneration.objects.order_by("-number").first().sha256 == rendered_sha(), f"round {i}"
    assert set(statuses) == {302}, statuses
    cluster = Cluster.objects.get()
    assert (cluster.virtual_id, cluster.drain_time) == (10 + rounds - 1, 20 + rounds - 1)
    newest = ConfigGeneration.objects.order_by("-number").first()
    numbers = list(ConfigGeneration.objects.values_list("number", flat=True))
    assert len(numbers) == len(set(numbers))
    # What the nodes applied is what the database holds.
    for unit in (units.node(1), units.node(2)):
        wait_until(lambda u=unit: applied_sha(u) == newest.sha256, 20, message=lambda u=unit: applied_sha(u))


def test_a_change_that_bypassed_the_write_path_is_noticed_and_reaches_the_nodes(units):
    before = ConfigGeneration.objects.order_by("-number").first()
    Cluster.objects.filter(pk=1).update(virtual_id=77)  # as a hand-edited database would
    newest = wait_until(
        lambda: ConfigGeneration.objects.filter(number__gt=before.number, sha256=rendered_sha()).first(), 10
    )
    assert newest.document["cluster"]["virtual_id"] == 77
    wait_until(lambda: applied_sha(units.node(1)) == newest.sha256, 10)
    assert Event.objects.filter(message__contains="differed from the database").exists()


# --- a worker killed between two steps ------------------------------------------------------------


@contextmanager
def crashing_worker(celery_worker, point):
    """The worker dies (SIGKILL) at ``point``; afterwards a healthy worker with a short lease runs."""
    celery_worker.stop()
    env = {**celery_worker.env, "TASK_LEASE_SECONDS": "2"}
    crashing = Worker(
        celery_worker.argv, {**env, "FLOTILLA_FAILPOINTS": point}, celery_worker.log_path, celery_worker.name
    )
    crashing.start()
    healthy = Worker(celery_worker.argv, env, celery_worker.log_path, celery_worker.name)
    try:
        yield crashing, healthy
    finally:
        for w in (crashing, healthy):
            if w.proc is not None and w.proc.poll() is None:
                w.stop()
        celery_worker.start()


def died(worker):
    return worker.proc.wait(timeout=30) is not None


@pytest.mark.parametrize("point", ["join.before_accept", "join.after_accept", "join.after_record"])
def test_add_new_node_survives_a_worker_killed_between_two_steps(admin_client, celery_worker, units, point):
    unit = units.node(2)
    code = unit.agent("offer-join")["code"]
    with crashing_worker(celery_worker, point) as (crashing, healthy):
        response = admin_client.post(reverse("add_node"), {"address": unit.address, "code": code})
        assert response.status_code == 302
        assert died(crashing)
        join = JoinRequest.objects.get(address=unit.address)
        assert join.state == JoinRequest.State.PENDING
        healthy.start()
        join = wait_until(
            lambda: JoinRequest.objects.exclude(state=JoinRequest.State.PENDING).filter(pk=join.pk).first(), 30
        )
    assert join.state == JoinRequest.State.DONE, join.message
    assert Node.objects.filter(address=unit.address).count() == 1
    unit.settle()
    wait_until(lambda: unit.membership().get("mode") == "member", 15)
    node = Node.objects.get(address=unit.address)
    wait_until(lambda: answering(Node.objects.get(pk=node.pk), timezone.now()), 15)


def test_a_join_refused_after_the_unit_accepted_leaves_the_unit_standalone(
    admin_client, celery_worker, units, settings
):
    unit = units.node(2)
    code = unit.agent("offer-join")["code"]
    with crashing_worker(celery_worker, "join.after_accept") as (crashing, healthy):
        admin_client.post(reverse("add_node"), {"address": unit.address, "code": code})
        assert died(crashing)
        assert unit.membership().get("mode") == "joining"
        healthy.env = {**healthy.env, "LICENSE_MAX_NODES": "1"}  # the cluster is full when it resumes
        healthy.start()
        join = wait_until(lambda: JoinRequest.objects.exclude(state=JoinRequest.State.PENDING).first(), 30)
    assert join.state == JoinRequest.State.REFUSED and "licence" in join.message
    assert not Node.objects.filter(address=unit.address).exists()
    assert unit.membership().get("mode") == "standalone"
    assert unit.agent("offer-join")["code"]  # Add to Cluster works again


@pytest.mark.parametrize("point", ["delete.before_leave", "delete.after_leave"])
def test_delete_survives_a_worker_killed_between_two_steps(admin_client, celery_worker, units, point):
    unit = units.node(2)
    join = add(admin_client, unit)
    node = Node.objects.get(pk=join.node_id)
    wait_until(lambda: answering(Node.objects.get(pk=node.pk), timezone.now()), 15)
    with crashing_worker(celery_worker, point) as (crashing, healthy):
        response = admin_client.post(reverse("node_action", args=[node.pk, "delete"]))
        assert response.status_code == 302
        assert died(crashing)
        assert Node.objects.get(pk=node.pk).removing
        healthy.start()
        wait_until(lambda: not Node.objects.filter(pk=node.pk).exists(), 30)
    unit.settle()
    assert unit.membership().get("mode") == "standalone"
    assert Event.objects.filter(message__startswith=f"Node {node.number} ({unit.address}) deleted").count() == 1


# --- one hung node ---------------------------------------------------------------------------------


@contextmanager
def frozen(unit):
    """The unit stops (SIGSTOP) as a hung machine would: its sshd (no new session gets a banner),
    its sessions and its agents."""
    listener = (unit.run / "sshd.pid").read_text().strip()
    subprocess.run(["kill", "-STOP", listener], check=True)
    subprocess.run(["pkill", "-STOP", "-u", unit.user], check=False)
    try:
        yield
    finally:
        subprocess.run(["pkill", "-CONT", "-u", unit.user], check=False)
        subprocess.run(["kill", "-CONT", listener], check=True)


def test_one_hung_node_during_a_push_never_makes_the_others_look_down(admin_client, units):
    add_all_enabled(admin_client, [units.node(n) for n in (2, 3)])
    others = [Node.objects.get(number=n) for n in (1, 2)]
    hung = Node.objects.get(number=3)
    wait_until(lambda: all(answering(Node.objects.get(pk=n.pk), timezone.now()) for n in [*others, hung]), 20)
    lapses = []
    with frozen(units.node(3)):
        with config.change() as change:
            Cluster.objects.filter(pk=change.cluster.pk).update(virtual_id=42)

        def push_to_the_hung_node_failed():
            for n in others:
                row = Node.objects.get(pk=n.pk)
                if not answering(row, timezone.now()):
                    lapses.append((row.number, row.last_ok_at, row.last_error))
            return Node.objects.get(pk=hung.pk).config_error

        wait_until(push_to_the_hung_node_failed, 30, interval=0.2)
        assert not answering(Node.objects.get(pk=hung.pk), timezone.now())
    assert lapses == []
    for n in others:
        assert not Event.objects.filter(message=f"Node {n.number} now dead").exists()


def test_the_reason_a_node_is_down_is_on_its_row_and_logged_once(admin_client, units):
    unit = units.node(2)
    node = add_enabled(admin_client, unit)
    wait_until(lambda: answering(Node.objects.get(pk=node.pk), timezone.now()), 15)
    Node.objects.filter(pk=node.pk).update(host_key=units.node(3).host_key_line)  # as if the node's key changed
    row = wait_until(lambda: Node.objects.filter(pk=node.pk, down_reason__startswith="host key changed").first(), 10)
    assert units.node(3).agent("facts")["host_key"] != unit.agent("facts")["host_key"]
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "host key changed: expected SHA256:" in page and ", got SHA256:" in page
    # A few more failed rounds log nothing new.
    failures = row.failures
    wait_until(lambda: Node.objects.get(pk=node.pk).failures >= failures + 3, 10)
    lines = Event.objects.filter(message__startswith=f"Node {node.number} does not answer its health checks: host key")
    assert lines.count() == 1

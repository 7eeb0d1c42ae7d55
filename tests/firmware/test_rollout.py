"""A software update of a 4-node cluster of real units: send, verify, install, reboot, rolling reboot."""

import hashlib
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cluster.configuration import rules as config
from cluster.models import Cluster, ConfigGeneration, Event, Node, Rollout
from tests.helpers import (
    NEW,
    all_up,
    build,
    download,
    fetch_service,
    health_rounds_completed,
    healthy,
    install,
    move_clock,
    reboot,
    reboot_order,
    roll,
    said,
    set_drain_time,
    settled_rollout,
    start_rolling,
    unit_state,
    upload,
    version_of,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("cluster_on_node1")


def test_an_update_is_installed_everywhere_then_each_node_rebooted_the_admin_node_last(
    admin_client, four, key, tmp_path
):
    path = build(tmp_path, key)
    response = install(admin_client, path)
    assert response.status_code == 302 and response.url == reverse("cluster_control")
    update = settled_rollout()
    assert update.state == Rollout.State.INSTALLED, update.message
    assert (
        "The new software (version 1.1.0) has been installed"
        in admin_client.get(reverse("cluster_control")).content.decode()
    )
    for n in (1, 2, 3, 4):
        assert unit_state(four.node(n), "slots.json")["pending_version"] == NEW
        assert version_of(n) == "1.0.0"  # nothing runs it before its reboot

    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert page.count(">Reboot</button>") == 4

    refused = reboot(admin_client, 1)
    assert refused.status_code == 400
    assert "Node 1 is the admin node: it is rebooted last, once every other node runs version 1.1.0" in (
        refused.content.decode()
    )
    assert unit_state(four.node(1), "slots.json")["pending_version"] == NEW

    for n in (2, 3, 4, 1):
        all_up()  # the one node out is back in rotation before the next goes
        done = reboot(admin_client, n)
        assert f"Node {n} is rebooting to run the new software" in done.content.decode()
        wait_until(
            lambda n=n: version_of(n) == NEW,
            30,
            message=lambda: str(Node.objects.values("number", "version", "last_error")),
        )
        four.node(n).settle()
    assert wait_until(lambda: Rollout.objects.get().state == Rollout.State.DONE, 10)
    assert Event.objects.filter(message="Software update complete: every node runs version 1.1.0").exists()
    assert Event.objects.filter(message__startswith="Node 2 now dead").exists()  # it really went down
    # The cluster now runs 1.1.0: the same patch is no upgrade any more.
    assert "Running version: 1.1.0." in admin_client.get(reverse("update_software")).content.decode()
    again = admin_client.post(
        reverse("update_software"), {"patch": SimpleUploadedFile("again.patch", path.read_bytes()), "action": "upload"}
    )
    assert "version 1.1.0 is not newer than the running 1.1.0" in again.content.decode()


def test_a_node_that_fails_to_verify_is_reported_and_no_other_node_is_changed(admin_client, four, key, tmp_path):
    # Node 3's disk cannot take the patch: it cannot unpack it, so it refuses it.
    (four.node(3).home / "slots").mkdir(exist_ok=True)
    (four.node(3).home / "slots" / ".staged").write_text("not a directory")
    (four.node(3).home / "slots").chmod(0o500)
    try:
        install(admin_client, build(tmp_path, key))
        update = settled_rollout()
    finally:
        (four.node(3).home / "slots").chmod(0o755)
    assert update.state == Rollout.State.FAILED
    assert "The software update to version 1.1.0 was refused (Node 3:" in update.message
    assert update.message.endswith("No node was changed.")
    states = dict(update.nodes.values_list("node__number", "state"))
    assert states == {1: "discarded", 2: "discarded", 3: "failed", 4: "discarded"}
    for n in (1, 2, 4):
        assert "pending" not in unit_state(four.node(n), "slots.json")
        assert not (four.node(n).home / "slots" / ".staged").exists()
    # A refused update holds nothing up: another can be uploaded.
    assert Rollout.active() is None


def at_most_one_out():
    out = [
        n.number
        for n in Node.objects.filter(enabled=True, is_admin=False)
        if n.maintenance_since or not n.accepting or not healthy(n)
    ]
    assert len(out) <= 1, f"more than one node out of rotation at once: {out}"


def test_a_rolling_reboot_drains_and_reboots_one_node_at_a_time_the_admin_last_and_no_request_fails(
    admin_client, serving, key, tmp_path
):
    set_drain_time(1)
    install(admin_client, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    admin = Node.objects.get(is_admin=True)
    failures, done = [], threading.Event()

    def client():
        # The admin node reboots last and holds the Virtual Address: until the failover work its own
        # reboot interrupts the service (README); the members' reboots must not fail one request.
        try:
            while not done.is_set():
                try:
                    fetch_service()
                except OSError as exc:
                    if not Node.objects.filter(pk=admin.pk).exclude(maintenance_since=None).exists():
                        failures.append(repr(exc))
        finally:
            connection.close()

    clients = [threading.Thread(target=client) for _ in range(3)]
    for thread in clients:
        thread.start()
    try:
        response = start_rolling(admin_client)
        assert "Rolling reboot started: one node at a time, the admin node last." in said(response), said(response)
        update = roll(admin_client, serving, check=at_most_one_out)
    finally:
        done.set()
        for thread in clients:
            thread.join()
    assert update.state == Rollout.State.DONE, update.message
    assert failures == []
    assert reboot_order() == [2, 3, 4, 1]
    assert all(n.version == NEW for n in Node.objects.all())
    assert not Node.objects.exclude(maintenance_since=None).exists()
    assert Event.objects.filter(message="Rolling reboot: Node 2 drains for 1 s, then reboots").exists()


def test_a_rolling_reboot_is_refused_while_a_node_is_not_up(admin_client, four, key, tmp_path):
    install(admin_client, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    booted = Node.objects.get(number=3).booted_at
    four.node(3).restart()  # back, but within its warm-up: Starting
    wait_until(lambda: (n := Node.objects.get(number=3)).booted_at != booted and healthy(n), 15)
    response = admin_client.post(reverse("rollout_action", args=["rolling"]))
    assert response.status_code == 400
    assert "Node 3 is Starting: a rolling reboot takes one node out at a time" in " ".join(said(response))
    assert Rollout.objects.get().state == Rollout.State.INSTALLED


def test_a_rolling_reboot_halts_on_a_node_that_does_not_come_back_and_can_be_cancelled(
    admin_client, four, key, tmp_path, settings
):
    settings.ROLLOUT_NODE_TIMEOUT = 20
    set_drain_time(1)

    def broken(module, source):  # this build cannot answer a health check
        return source.replace(
            "def status(now=None):\n", 'def status(now=None):\n    raise AgentError("this build is broken")\n', 1
        )

    install(admin_client, build(tmp_path, key, edit=broken))
    assert settled_rollout().state == Rollout.State.INSTALLED
    start_rolling(admin_client)
    # Node 2 is back from its reboot and its checks fail with the new build's reason: then the clock
    # moves past the time a node has to come back (however long the machine took to boot it).
    wait_until(
        lambda: "this build is broken" in Node.objects.get(number=2).down_reason,
        60,
        message=lambda: str(Node.objects.values("number", "down_reason")),
    )
    move_clock(21)
    update = wait_until(lambda: (u := Rollout.objects.get()).state == Rollout.State.HALTED and u, 15)
    assert update.message.startswith("Rolling reboot halted at Node 2: it did not come back within 20 s of its reboot")
    assert "this build is broken" in update.message
    # The rest of the cluster keeps serving: nothing else was taken out.
    for n in (3, 4):
        node = Node.objects.get(number=n)
        assert node.version == "1.0.0" and node.accepting and healthy(node) and not node.maintenance_since
    assert reboot_order() == [2]
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert "Rolling reboot halted at Node 2" in page and ">Resume</button>" in page

    response = admin_client.post(reverse("rollout_action", args=["cancel"]), follow=True)
    assert "Rolling reboot cancelled: no further node is taken out." in response.content.decode()
    update.refresh_from_db()
    assert update.state == Rollout.State.INSTALLED
    assert not Node.objects.exclude(maintenance_since=None).exists()
    # Health rounds that started after the Cancel have moved the rollout on as far as it goes.
    health_rounds_completed(since=timezone.now())
    assert reboot_order() == [2]


def test_a_worker_killed_mid_rollout_is_shown_interrupted_and_the_next_worker_finishes_it(
    admin_client, four, key, tmp_path, celery_worker
):
    set_drain_time(1)
    install(admin_client, build(tmp_path, key))
    assert settled_rollout().state == Rollout.State.INSTALLED
    start_rolling(admin_client)
    wait_until(lambda: 3 in reboot_order(), 60, message=lambda: str(Rollout.objects.values().get()))
    celery_worker.kill()
    try:
        page = wait_until(
            lambda: (
                (html := admin_client.get(reverse("cluster_control")).content.decode())
                and "Interrupted" in html
                and html
            ),
            15,
        )
        assert "Rolling reboot: Node 3:" in page
        assert Rollout.objects.get().state == Rollout.State.ROLLING
    finally:
        celery_worker.start()
    update = roll(admin_client, four)
    assert update.state == Rollout.State.DONE, update.message
    assert reboot_order() == [2, 3, 4, 1]
    for n in (1, 2, 3, 4):
        log = (four.node(n).home / "node.log").read_text()
        assert log.count(f"Activated version {NEW}") == 1, log  # each node rebooted onto it exactly once


def test_a_node_waits_for_the_update_before_it_takes_a_configuration_it_cannot_read(admin_client, four, key, tmp_path):
    """Mixed versions: a newer configuration schema goes only to the nodes whose software understands it."""

    def schema_2(module, source):
        return source.replace("SCHEMAS = (1,)", "SCHEMAS = (1, 2)", 1)

    install(admin_client, build(tmp_path, key, edit=schema_2))
    assert settled_rollout().state == Rollout.State.INSTALLED
    reboot(admin_client, 2)
    wait_until(lambda: version_of(2) == NEW, 30)
    wait_until(lambda: Node.objects.get(number=2).schemas == [1, 2], 10)
    latest = ConfigGeneration.objects.order_by("-number").first()
    document = {**latest.document, "schema": 2}
    newer = ConfigGeneration.objects.create(
        number=latest.number + 1, sha256=hashlib.sha256(config.canonical(document)).hexdigest(), document=document
    )
    wait_until(lambda: Node.objects.get(number=2).applied_generation == newer.number, 15)
    wait_until(lambda: "waiting for the software update" in Node.objects.get(number=3).config_error, 15)
    page = admin_client.get(reverse("cluster_control")).content.decode()
    assert page.count("Waiting for the software update</strong>") == 3  # nodes 1, 3 and 4
    assert unit_state(four.node(3), "config.json")["generation"] == latest.number  # never sent what it cannot read


def test_a_restore_reboots_the_nodes_one_at_a_time_the_admin_last(admin_client, four):
    set_drain_time(1)
    saved = download(admin_client)
    with config.change():
        Cluster.objects.update(virtual_id=7)
    all_up()
    response = upload(admin_client, saved)
    assert response.status_code == 302, said(response)
    update = roll(admin_client, four, check=at_most_one_out)
    assert update.state == Rollout.State.DONE, update.message
    restores = [
        e.node_number
        for e in Event.objects.filter(message__contains="reboots to take the restored configuration").order_by("id")
    ]
    assert restores == [2, 3, 4, 1]
    assert Event.objects.filter(message="Restore complete: every node has rebooted").exists()
    for n in (1, 2, 3, 4):
        assert unit_state(four.node(n), "config.json")["config"]["cluster"]["virtual_id"] == 1

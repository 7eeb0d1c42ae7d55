"""The SSH module against real sshd nodes of the local cluster."""

import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from cluster import ssh


def target_of(node, host_key=None):
    return ssh.Target(f"node {node.n}", node.address, 2222, node.user, host_key or node.host_key_line)


def test_facts_come_back_from_a_real_node(harness, pool):
    facts = pool.run(target_of(harness.node(1)), "facts")
    assert facts["hostname"] == "lb1"
    assert facts["cpu_count"] >= 1 and facts["memory_mib"] > 0 and facts["disk_gib"] > 0
    assert facts["interfaces"][0]["addresses"] == [f"{harness.node(1).address}/24"]
    assert {"mac", "mtu", "speed_mbps", "duplex"} <= facts["interfaces"][0].keys()
    assert facts["version"]


def test_the_persistent_session_answers_without_a_new_process(harness, pool):
    target = target_of(harness.node(2))
    first = pool.call(target, "status")
    second = pool.call(target, "status")
    assert first["ok"] and second["ok"] and second["time"] > first["time"]


def test_a_changed_host_key_is_refused(harness, pool):
    impostor = target_of(harness.node(2), host_key=harness.node(1).host_key_line)
    with pytest.raises(ssh.HostKeyMismatch) as refused:
        pool.run(impostor, "facts")
    assert "node 2" in str(refused.value) and "host key mismatch" in str(refused.value)
    assert ssh.fingerprint(harness.node(1).host_key_line) in str(refused.value)


def test_a_node_without_a_pinned_key_is_refused(harness, pool):
    node = harness.node(3)
    with pytest.raises(ssh.HostKeyMismatch, match="no host key is pinned"):
        pool.run(ssh.Target("node 3", node.address, 2222, node.user, ""), "facts")


def test_a_key_the_node_does_not_know_fails_authentication(harness, tmp_path):
    stranger = ssh.Pool(ssh.load_or_create_key(tmp_path / "other_key"))
    with pytest.raises(ssh.AuthenticationFailed, match="node 1"):
        stranger.run(target_of(harness.node(1)), "facts")


def test_a_node_with_nothing_listening_is_reported_unreachable(harness, pool):
    target = ssh.Target("node 9", f"{harness.prefix}.209", 2222, "nobody", harness.node(1).host_key_line)
    with pytest.raises(ssh.Unreachable, match=rf"node 9 \({re.escape(target.address)}:2222\): unreachable"):
        pool.run(target, "facts")


def test_a_node_that_never_answers_is_reported_within_its_timeout(harness):
    # A listener that accepts and then says nothing: the SSH banner never comes.
    server = socket.create_server((f"{harness.prefix}.210", 2222))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    silent = ssh.Pool(ssh.load_or_create_key(settings.CLUSTER_SSH_KEY), connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ssh.Unreachable, match="node 10"):
        silent.run(ssh.Target("node 10", f"{harness.prefix}.210", 2222, "x", harness.node(1).host_key_line), "facts")
    assert time.monotonic() - started < 5  # generous: the point is that it does not hang
    for conn, _ in accepted:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    "hostile", ["; touch {f}", "$(touch {f})", "`touch {f}`", "' ; touch {f} '", "a\nb; touch {f}"]
)
def test_a_hostile_value_reaches_the_node_as_plain_text(harness, pool, hostile):
    marker = Path(f"/tmp/flotilla-pwned-{uuid.uuid4().hex}")
    value = hostile.format(f=marker)
    target = target_of(harness.node(1))
    assert pool.run(target, "log", value) == {"logged": value}
    assert pool.call(target, "log", value) == {"logged": value}
    assert not marker.exists()


def test_a_refused_command_says_which_node_and_why(harness, pool):
    with pytest.raises(ssh.CommandFailed) as failed:
        pool.run(target_of(harness.node(4)), "log", "")
    assert "node 4" in str(failed.value) and "message must be 1-1000 characters" in str(failed.value)
    with pytest.raises(ssh.CommandFailed, match="unknown verb 'reboot-everything'"):
        pool.call(target_of(harness.node(4)), "reboot-everything")


def test_a_session_to_a_node_that_went_down_reports_unreachable(harness, pool):
    node = harness.node(4)
    target = target_of(node)
    pool.call(target, "status")
    node.stop()
    try:
        with pytest.raises(ssh.Unreachable, match="node 4"):
            pool.call(target, "status")
    finally:
        node.start()
    assert pool.call(target, "status")["ok"]

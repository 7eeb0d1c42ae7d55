"""The `flotilla` command-line client run as an operator runs it: the console script, against a real cluster.

The cluster's API is the test server (the test database the worker also writes to); the nodes are the
harness's real units. One cluster serves a whole operator's script, so the script is one test.
"""

import contextlib
import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.test import override_settings

from cluster.models import Cluster, JoinRequest, Node, RealServer, Rollout, VirtualService
from firmware import patch
from tests.harness import BASE_DIR
from tests.helpers import (
    NEW,
    SHARED,
    TEST_PREFIX,
    add_enabled,
    all_up,
    build,
    move_clock,
    reboot_order,
    roll,
    set_drain_time,
    wait_applied,
    wait_until,
    with_virtual_service,
)
from wui.api import keys

SCRIPT = Path(sys.executable).with_name("flotilla")
NOBODY = f"http://{TEST_PREFIX}.250:9"  # an address of the tests' block where nothing listens


def command():
    """The console script `make venv` installs beside this Python; `python -m wui.cli` where it is missing."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "wui.cli"]


class Flotilla:
    """`flotilla --url URL --key KEY ...` run in a fresh process, as a shell script would."""

    def __init__(self, url, key, ca_file=None):
        self.url, self.key = url, key
        self.tls = ["--ca-cert", ca_file] if ca_file else []
        # Nothing of the test's own settings leaks in: the client reads its own variables only.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOTILLA_", "DJANGO_"))}
        self.started = []  # the runs started in the background, stopped at the end of the test whatever happened

    def argv(self, args, key=None, url=None):
        return [*command(), "--url", url or self.url, "--key", key or self.key, *self.tls, *args]

    def __call__(self, *args, key=None, url=None, code=0):
        done = subprocess.run(
            self.argv(args, key, url), capture_output=True, text=True, timeout=120, cwd=BASE_DIR, env=self.env
        )
        assert done.returncode == code, f"flotilla {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    def json(self, *args, key=None):
        return json.loads(self(*args, "--json", key=key).stdout)

    def on_a_terminal(self, *args):
        """Run with stderr on a terminal, where the progress bars draw: (exit code, stdout, what it showed)."""
        return self.start_on_a_terminal(*args)()

    def start_on_a_terminal(self, *args):
        """Start it with stderr on a terminal; the function returned waits for its end: (exit code,
        stdout, what the terminal showed)."""
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            self.argv(args),
            stdout=subprocess.PIPE,
            stderr=follower,
            cwd=BASE_DIR,
            env={**self.env, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(follower)
        self.started.append(proc)
        shown = []

        def read():
            with contextlib.suppress(OSError):  # EIO once the client has exited and closed the terminal
                while chunk := os.read(leader, 4096):
                    shown.append(chunk)
            os.close(leader)

        reader = threading.Thread(target=read)
        reader.start()

        def finish():
            out = proc.stdout.read().decode()
            code = proc.wait(timeout=60)
            reader.join(10)
            return code, out, b"".join(shown).decode(errors="replace")

        return finish


@pytest.fixture
def flotilla(cluster_on_node1, live_server, admin_user):
    _, key = keys.create(admin_user, "operator's laptop", read_only=False)
    client = Flotilla(live_server.url, key, getattr(live_server, "ca_file", None))
    yield client
    for proc in client.started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture
def signing_key(settings):
    """A key the cluster trusts for software patches."""
    private = patch.new_private_key()
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(private)]
    return private


def test_an_operator_runs_the_cluster_from_a_shell_script(flotilla, units, admin_user, signing_key, tmp_path):
    # The cluster as Create New Cluster left it: the admin node alone.
    cluster = flotilla.json("status")
    assert (cluster["mode"], cluster["shared_address"]) == ("clustering", SHARED)
    assert [(n["id"], n["address"], n["is_admin"]) for n in cluster["nodes"]] == [(1, units.node(1).address, True)]
    shown = flotilla("status").stdout
    assert f"Cluster on {SHARED}" in shown and units.node(1).address in shown

    # A software patch: a file that is none is refused with the reason; a patch uploads with its progress bar.
    junk = tmp_path / "junk.patch"
    junk.write_bytes(b"not a patch\n" * 1000)
    assert "The software update was refused" in flotilla("software", "upload", str(junk), code=1).stderr
    code, out, terminal = flotilla.on_a_terminal("software", "upload", str(build(tmp_path, signing_key)))
    assert code == 0, out + terminal
    assert f"Uploading flotilla-{NEW}.patch" in terminal and "100%" in terminal
    assert f"Version {NEW} transferred and validated" in out
    assert NEW in [kept["version"] for kept in flotilla.json("software", "show")["kept"]]

    # Add a unit with the one-time code it shows: the client follows the join to its end.
    unit = units.node(2)
    added = flotilla("nodes", "add", unit.address, "--code", unit.agent("offer-join")["code"])
    assert "succeeded" in added.stdout and "join-" in added.stderr  # the join's progress, as it went
    unit.settle()  # the reboot that finishes the conversion
    assert Node.objects.get(number=2).address == unit.address

    # A code the unit never offered: the join fails on the unit's refusal, exit 6 with its reason.
    stranger = units.node(3)
    failed = flotilla("nodes", "add", stranger.address, "--code", "ABCD-EF23", code=6)
    refusal = JoinRequest.objects.get(address=stranger.address).message
    assert refusal and refusal in failed.stderr and "failed" in failed.stderr
    assert not Node.objects.filter(address=stranger.address).exists()

    # The parameters, and a write made on top of an older generation: refused, exit 4, nothing changed.
    read = flotilla.json("parameters", "get")
    assert "Node Drain Time: 25 s" in flotilla("parameters", "set", "--drain-time", "25").stdout
    assert Cluster.get().drain_time == 25
    stale = flotilla("--generation", str(read["generation"]), "parameters", "set", "--drain-time", "40", code=4)
    assert f"changed since generation {read['generation']}" in stale.stderr
    assert Cluster.get().drain_time == 25
    current = flotilla.json("parameters", "get")
    assert current["drain_time"] == 25 and current["generation"] > read["generation"]
    flotilla("--generation", str(current["generation"]), "parameters", "set", "--virtual-id", "42")
    assert Cluster.get().virtual_id == 42

    # Enable, and Enable again: the API's own reason for the refusal, exit 1.
    assert "Node 2 enabled" in flotilla("nodes", "enable", "2").stdout
    assert Node.objects.get(number=2).enabled
    assert "Node 2 is already enabled" in flotilla("nodes", "enable", "2", code=1).stderr
    assert json.loads(flotilla("nodes", "enable", "2", "--json", code=1).stdout) == {
        "detail": "Node 2 is already enabled"
    }
    assert "Node 2 resync requested" in flotilla("nodes", "resync", "2").stdout
    listed = {n["id"]: n for n in flotilla.json("nodes", "list")}
    assert listed[2]["enabled"] and listed[2]["address"] == unit.address

    # A Virtual Service on the shared address (the API's default) and a real server behind it.
    created = flotilla.json("vs", "add", "--name", "web", "--port", "80", "--set", "check_url=/health")
    service = VirtualService.objects.get(pk=created["id"])
    assert (service.name, service.address, service.port, service.check_url) == ("web", SHARED, 80, "/health")
    flotilla("rs", "add", str(service.pk), f"{TEST_PREFIX}.201", "8080", "--weight", "500")
    assert RealServer.objects.get(virtual_service=service).weight == 500
    assert [(s["name"], len(s["real_servers"])) for s in flotilla.json("vs", "list")] == [("web", 1)]
    assert f"{TEST_PREFIX}.201" in flotilla("vs", "show", str(service.pk)).stdout

    # Disable: the node drains for the Node Drain Time, and Delete is refused meanwhile with the reason.
    flotilla("nodes", "disable", "2")
    assert not Node.objects.get(number=2).enabled
    refused = flotilla("nodes", "delete", "2", code=1)
    assert "Node 2 is Draining" in refused.stderr and "only a Disabled node can be deleted" in refused.stderr

    # A backup, then restoring it: the upload streams with a progress bar on the terminal.
    path = tmp_path / "cluster.backup"
    assert "Backup saved" in flotilla("backup", str(path)).stdout
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # the gzip'd tar the WUI's Backup gives
    code, out, terminal = flotilla.on_a_terminal("restore", str(path))
    assert code == 0, out + terminal
    assert "Uploading cluster.backup" in terminal and "100%" in terminal
    assert "Configuration restored" in out

    # A file over the cluster's limit is refused before it has all gone: the API's reason, exit 1.
    big = tmp_path / "huge.backup"
    with big.open("wb") as file:
        file.truncate(32 * 1024 * 1024)
    with override_settings(BACKUP_MAX_BYTES=1024 * 1024):
        assert "The file is too large" in flotilla("restore", str(big), code=1).stderr

    # The System Message File holds what the client did, with who did it.
    lines = [line["message"] for line in flotilla.json("logs", "--limit", "200")]
    assert any(f"Add New Node {unit.address} requested" in m for m in lines), lines
    assert "Node Drain Time" in flotilla("logs").stdout
    node_lines = flotilla.json("logs", "--node", "2")
    assert {line["node"] for line in node_lines} == {2}
    assert any("Node 2 resync requested" in line["message"] for line in node_lines)

    # Credentials and reachability, as a script tells them apart.
    assert flotilla("status", key="flt_00000000_not-a-key", code=3).stderr
    _, read_only = keys.create(admin_user, "monitoring")
    assert flotilla.json("nodes", "show", "2", key=read_only)["id"] == 2  # a read-only key reads ...
    flotilla("nodes", "enable", "2", key=read_only, code=3)  # ... and is refused a change
    assert not Node.objects.get(number=2).enabled
    assert "Could not reach the cluster" in flotilla("status", url=NOBODY, code=5).stderr
    flotilla("nodes", "enable", "two", code=2)

    # Past the drain, Delete: started without waiting, then followed by its operation's id.
    move_clock(26)
    operation = flotilla("nodes", "delete", "2", "--no-wait").stdout.strip()
    assert operation.startswith("delete-")
    finished = flotilla.json("operation", operation, "--wait")
    assert finished["state"] == "succeeded", finished
    assert not Node.objects.filter(number=2).exists()
    unit.settle()


def test_the_client_needs_only_the_standard_library_and_click():
    """It runs on an operator's machine: importing it loads nothing of Django or the rest of the product."""
    probe = "import json, sys, wui.cli; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=BASE_DIR, check=True)
    own = {"__main__", "click", "wui"}
    # (the editable install's finder, and setuptools' hook where it is installed, are the venv's, not ours)
    foreign = [
        m
        for m in json.loads(done.stdout)
        if m not in sys.stdlib_module_names and m not in own and not m.startswith(("__editable__", "_distutils_hack"))
    ]
    assert foreign == []


def test_make_venv_installs_the_flotilla_command():
    assert SCRIPT.exists(), (
        f"{SCRIPT} is missing: `make venv` installs the project (pip install -e .), which puts it there"
    )
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, cwd="/", check=True)
    assert "Exit codes" in done.stdout


def test_an_operator_updates_the_software_and_reboots_the_nodes_one_at_a_time(
    flotilla, admin_client, units, signing_key, tmp_path
):
    with_virtual_service()
    add_enabled(admin_client, units.node(2))
    set_drain_time(1)
    all_up()
    wait_applied()  # an update starts only on a cluster in sync

    # Upload and install, followed to the end: the upload's bar, then the nodes done of all.
    code, out, terminal = flotilla.on_a_terminal("software", "update", str(build(tmp_path, signing_key)))
    assert code == 0, out + terminal
    assert f"Uploading flotilla-{NEW}.patch" in terminal and "100%" in terminal
    assert "update-" in terminal and "2/2" in terminal
    assert " succeeded: " in out and NEW in out
    shown = flotilla("software", "show").stdout
    assert f"Update to version {NEW}: Installed" in shown and "NODE" in shown

    # The rolling reboot: one node at a time, the admin node last, its bar counting the nodes rebooted.
    finish = flotilla.start_on_a_terminal("software", "rolling-reboot")
    wait_until(lambda: Rollout.objects.get().state == Rollout.State.ROLLING, 15)
    assert roll(admin_client, units).state == Rollout.State.DONE  # the clock moved past each node's warm-up
    code, out, terminal = finish()
    assert code == 0, out + terminal
    assert "rolling-reboot-" in terminal and "2/2" in terminal
    assert "rolling-reboot" in out and "succeeded" in out
    assert reboot_order() == [2, 1]
    versions = {n["id"]: n["version"] for n in flotilla.json("nodes", "list")}
    assert versions == {1: NEW, 2: NEW}
    for n in (1, 2):
        units.node(n).settle()

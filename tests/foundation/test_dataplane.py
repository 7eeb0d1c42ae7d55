"""The data plane: real HAProxy processes driven by the node agent, on 127.0.14.x loopback addresses only."""

import contextlib
import csv
import hashlib
import http.client
import http.server
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from nodes import agent
from nodes.agent import dataplane
from nodes.agent.formats import canonical

HAPROXY = "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy is not installed (make deps)")

VS = "127.0.14.190"  # a Virtual Service address: a client connects to it on the admin unit
CLIENT = "127.0.14.250"  # the client address a PROXY header claims
_ports = itertools.count(20100, 10)


def eventually(probe, timeout=15.0, what="the expected state"):
    """Wait for an event: probe() returning something true (an exception counts as not yet)."""
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
        except (OSError, AssertionError, agent.AgentError) as exc:
            error = exc
        time.sleep(0.05)
    raise AssertionError(f"{what} was not reached within {timeout} s (last error: {error!r})")


# --- units and real servers --------------------------------------------------------------------------


class Unit:
    """A node's state directory, with its own address; calls run on it as NODE_HOME."""

    def __init__(self, root, number):
        self.id = number
        self.address = f"127.0.14.{200 + number}"
        self.home = root / f"unit{number}"
        self.home.mkdir()
        facts = {"interfaces": [{"name": "eth0", "device": "lo", "addresses": [f"{self.address}/24"]}]}
        (self.home / "node.json").write_text(json.dumps(facts))

    @contextlib.contextmanager
    def active(self):
        before = os.environ.get("NODE_HOME")
        os.environ["NODE_HOME"] = str(self.home)
        try:
            yield
        finally:
            os.environ["NODE_HOME"] = before or ""

    def call(self, func, *args):
        with self.active():
            return func(*args)

    def pids(self):
        return self.call(dataplane.running_pids)

    def haproxies(self):
        """Every haproxy process started on this unit's files, also old ones still finishing."""
        found = []
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                if entry.isdigit() and str(self.home).encode() in cmdline and b"haproxy" in cmdline:
                    found.append(int(entry))
        return found

    def power_off(self):
        self.call(dataplane.stop)
        deadline = time.monotonic() + 5
        while self.haproxies() and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in self.haproxies():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def units(tmp_path, monkeypatch):
    monkeypatch.setenv("NODE_HOME", str(tmp_path))
    made = []

    def make(number):
        made.append(Unit(tmp_path, number))
        return made[-1]

    yield make
    for unit in made:
        unit.power_off()


class RealServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name, address, port):
        self.name, self.peers = name, []
        super().__init__((address, port), Answer)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address):
        pass  # HAProxy's health checks end their connections with a reset: not an error here

    @property
    def endpoint(self):
        address, port = self.server_address
        return {"address": address, "port": port, "weight": 1000, "enabled": True}


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a drained connection can carry a second request

    def do_GET(self):
        self.server.peers.append(self.client_address[0])
        body = json.dumps(
            {"server": self.server.name, "peer": self.client_address[0], "xff": self.headers.get("X-Forwarded-For")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def real_servers():
    started = []

    def start(name, address):
        for _ in range(20):
            with contextlib.suppress(OSError):
                started.append(RealServer(name, address, next(_ports)))
                return started[-1]
        raise RuntimeError("no free port")

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


# --- documents ---------------------------------------------------------------------------------------


def service(port, servers, **fields):
    return {
        "name": "Web",
        "address": VS,
        "port": port,
        "protocol": "tcp",
        "layer": 7,
        "scheduling": "rr",
        "persistence": "none",
        "persistence_timeout": 360,
        "transparency": False,
        "subnet_originating": True,
        "check_url": "/",
        "check_status": 200,
        "interface": "eth0",
        "enabled": True,
        "real_servers": servers,
        **fields,
    }


def document(services, nodes=()):
    return {
        "schema": 1,
        "cluster": {"shared_address": "127.0.14.90", "virtual_id": 1, "drain_time": 10},
        "nodes": [{"id": u.id, "address": u.address, "enabled": True} for u in nodes],
        "network": {},
        "virtual_services": services,
    }


def envelope(body, generation):
    return json.dumps({"config": body, "generation": generation, "sha256": hashlib.sha256(canonical(body)).hexdigest()})


# --- clients -----------------------------------------------------------------------------------------


def proxy_header(source, destination, port):
    """A PROXY protocol v2 header, as the admin's spreader writes it: TCP over IPv4, PROXY command."""
    addresses = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack("!HH", 40000, port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def proxied_get(unit, port, destination=VS, source=CLIENT):
    """One request to a unit's node side, as if it came from the admin for a client of destination."""
    with socket.create_connection((unit.address, port), timeout=5) as sock:
        sock.sendall(proxy_header(source, destination, port))
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {destination}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def get(address, port):
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request("GET", "/")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def show_stat(unit):
    lines = unit.call(dataplane.runtime, ["show stat"]).splitlines()
    return {(r["pxname"], r["svname"]): r for r in csv.DictReader([lines[0].removeprefix("# "), *lines[1:]])}


# --- rendering ---------------------------------------------------------------------------------------

COMBINATIONS = list(itertools.product((7, 4), ("rr", "wrr", "lc", "wlc", "sh"), ("none", "source_ip", "active_cookie")))


@pytest.mark.parametrize(("layer", "scheduling", "persistence"), COMBINATIONS)
def test_every_layer_scheduling_and_persistence_renders_a_configuration_haproxy_accepts(
    units, tmp_path, layer, scheduling, persistence
):
    unit = units(1)
    servers = [
        {"address": "127.0.14.31", "port": 20001, "weight": 65535, "enabled": True},
        {"address": "127.0.14.32", "port": 20002, "weight": 1000, "enabled": False},
    ]
    vs = service(80, servers, layer=layer, scheduling=scheduling, persistence=persistence)
    text = unit.call(
        dataplane.render,
        document([vs], [unit]),
        json.loads((unit.home / "node.json").read_text()),
        "admin",
        {"1": "ready"},
    )
    (tmp_path / "check.cfg").write_text(text)
    out = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "check.cfg")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    weighted = scheduling in ("wrr", "wlc")
    assert ("weight 256" in text and "weight 4 " in text) == weighted  # 1000 of 65535, scaled to 1-256
    assert ("cookie FLOTILLA insert" in text) == (persistence == "active_cookie" and layer == 7)
    assert ("stick on src" in text) == (persistence == "source_ip")
    assert ("option httpchk GET /" in text) == (layer == 7)


def test_udp_services_are_left_out_with_a_note_and_disabled_services_are_not_served(units):
    unit = units(1)
    facts = json.loads((unit.home / "node.json").read_text())
    services = [service(53, [], protocol="udp"), service(81, [], address="127.0.14.191", enabled=False)]
    text = unit.call(dataplane.render, document(services, [unit]), facts, "admin", {})
    assert "127.0.14.190:53 is UDP: HAProxy cannot serve UDP" in text
    assert "frontend" not in text and "backend" not in text


@pytest.mark.parametrize("url", ["/a\nserver x 127.0.14.9:80", "/a b", "health"])
def test_a_check_url_that_could_escape_its_line_is_refused_before_haproxy_sees_it(units, url):
    unit = units(1)
    with pytest.raises(agent.AgentError, match="check_url must be a path"):
        unit.call(agent.apply_config, envelope(document([service(20090, [], check_url=url)], [unit]), 1))
    assert not (unit.home / "config.json").exists()
    assert unit.pids() == []


# --- serving -----------------------------------------------------------------------------------------


def test_a_proxied_request_reaches_a_real_server_and_round_robin_uses_both(units, real_servers):
    unit = units(1)
    one, two = real_servers("one", "127.0.14.31"), real_servers("two", "127.0.14.32")
    port = next(_ports)
    assert unit.call(agent.apply_config, envelope(document([service(port, [one.endpoint, two.endpoint])]), 1))[
        "changed"
    ]
    answers = [proxied_get(unit, port) for _ in range(4)]
    assert sorted(a["server"] for a in answers) == ["one", "one", "two", "two"]
    # The client is the one the PROXY header named; the real server sees this node's address.
    assert {(a["xff"], a["peer"]) for a in answers} == {(CLIENT, unit.address)}
    # A connection for another Virtual Service address on the same port is not routed here.
    with pytest.raises((AssertionError, OSError, ValueError)):
        proxied_get(unit, port, destination="127.0.14.199")


def test_a_check_url_haproxy_would_misread_is_refused_and_the_previous_configuration_keeps_serving(units, real_servers):
    unit = units(1)
    one = real_servers("one", "127.0.14.31")
    port = next(_ports)
    unit.call(agent.apply_config, envelope(document([service(port, [one.endpoint])]), 1))
    pids, applied = unit.pids(), (unit.home / "haproxy" / "haproxy.cfg").read_text()
    # A quote would end HAProxy's word early: refused before anything is written.
    refused = envelope(document([service(port, [one.endpoint], check_url='/a"b')]), 2)
    with pytest.raises(agent.AgentError, match=r"check_url must be a path that starts with /"):
        unit.call(agent.apply_config, refused)
    assert unit.call(agent.read_json, "config.json")["generation"] == 1
    assert (unit.home / "haproxy" / "haproxy.cfg").read_text() == applied
    assert unit.pids() == pids
    assert proxied_get(unit, port)["server"] == "one"


def test_a_configuration_whose_port_is_taken_is_refused_and_the_old_process_keeps_serving(units, real_servers):
    unit = units(1)
    one = real_servers("one", "127.0.14.31")
    port, taken = next(_ports), next(_ports)
    unit.call(agent.apply_config, envelope(document([service(port, [one.endpoint])]), 1))
    pids = unit.pids()
    with socket.create_server((unit.address, taken)):
        more = [service(port, [one.endpoint]), service(taken, [one.endpoint], address="127.0.14.191")]
        with pytest.raises(agent.AgentError, match=r"HAProxy could not start .*cannot bind socket"):
            unit.call(agent.apply_config, envelope(document(more), 2))
    assert unit.call(agent.read_json, "config.json")["generation"] == 1
    assert unit.pids() == pids
    assert proxied_get(unit, port)["server"] == "one"
    assert "frontend serve_" + str(taken) not in (unit.home / "haproxy" / "haproxy.cfg").read_text()


def test_reloads_under_a_running_request_loop_lose_no_request(units, real_servers):
    unit = units(1)
    one, two = real_servers("one", "127.0.14.31"), real_servers("two", "127.0.14.32")
    port = next(_ports)
    body = document([service(port, [one.endpoint, two.endpoint], scheduling="wrr")])
    unit.call(agent.apply_config, envelope(body, 1))
    done, results = threading.Event(), []

    def loop():
        while not done.is_set():
            try:
                results.append(proxied_get(unit, port)["server"])
            except (OSError, AssertionError, ValueError) as exc:
                results.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        eventually(lambda: len(results) >= 20, what="requests flowing")
        seen = {tuple(unit.pids())}
        for generation in range(2, 7):
            servers = [one.endpoint, {**two.endpoint, "weight": 100 * generation}]
            before = len(results)
            unit.call(agent.apply_config, envelope(document([service(port, servers, scheduling="wrr")]), generation))
            seen.add(tuple(unit.pids()))
            eventually(lambda before=before: len(results) >= before + 20, what="requests after the reload")
    finally:
        done.set()
        thread.join()
    assert len(seen) == 6  # every generation was a new process
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:3]}"


def test_the_same_generation_again_is_no_reload(units, real_servers):
    unit = units(1)
    one = real_servers("one", "127.0.14.31")
    text = envelope(document([service(next(_ports), [one.endpoint])]), 1)
    unit.call(agent.apply_config, text)
    pids = unit.pids()
    assert unit.call(agent.apply_config, text) == {"generation": 1, "changed": False}
    assert unit.pids() == pids


def test_unreachable_real_servers_are_never_connected_to(units, real_servers):
    unit = units(1)
    one = real_servers("one", "127.0.14.31")
    port = next(_ports)
    far = {"address": "10.9.1.1", "port": 80, "weight": 1000, "enabled": True}
    unit.call(agent.apply_config, envelope(document([service(port, [far, one.endpoint])]), 1))
    text = (unit.home / "haproxy" / "haproxy.cfg").read_text()
    line = next(line for line in text.splitlines() if "10.9.1.1:80" in line)
    assert line.endswith(" disabled") and "check" not in line
    backend = f"vs_{VS}_{port}"
    # The reachable one has been checked (and is up) while the far one never was: no check, no connection.
    eventually(lambda: show_stat(unit)[(backend, "rs_127.0.14.31_" + str(one.endpoint["port"]))]["check_status"])
    answers = [proxied_get(unit, port)["server"] for _ in range(4)]
    far_stats = show_stat(unit)[(backend, "rs_10.9.1.1_80")]
    assert answers == ["one"] * 4
    assert (far_stats["status"], far_stats["check_status"], far_stats["lbtot"], far_stats["econ"]) == (
        "MAINT",
        "",
        "0",
        "0",
    )


def test_status_counts_open_connections_and_requests(units, real_servers):
    unit = units(1)
    assert unit.call(agent.status)["dataplane"] == {"running": False}
    one = real_servers("one", "127.0.14.31")
    port = next(_ports)
    unit.call(agent.apply_config, envelope(document([service(port, [one.endpoint])]), 1))
    with socket.create_connection((unit.address, port), timeout=5) as sock:
        sock.sendall(proxy_header(CLIENT, VS, port))
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {VS}\r\n\r\n".encode())  # kept alive: the connection stays open
        assert b"200" in sock.recv(65536)
        status = eventually(
            lambda: (s := unit.call(agent.status))["connections"] >= 1 and s["requests_per_second"] >= 1 and s,
            what="the open connection and its request counted",
        )
    assert status["active_connections"] == status["connections"]
    assert status["dataplane"] == {"running": True}


def test_boot_starts_the_data_plane_even_with_no_configuration(units):
    unit = units(1)
    assert unit.call(agent.boot)["dataplane"] == {"running": True}
    assert unit.call(agent.status)["connections"] == 0
    unit.power_off()
    assert unit.call(agent.status)["dataplane"] == {"running": False}


def test_a_killed_haproxy_not_yet_reaped_does_not_count_as_running(units):
    """A power-off kills HAProxy; until the init system reaps it, it is a zombie that keeps its pid and
    its name. The unit's boot must start a new one on the same configuration, not take it for running."""
    unit = units(1)
    unit.call(agent.boot)
    dead = subprocess.Popen([HAPROXY, "-v"], stdout=subprocess.DEVNULL)  # exits at once, reaped by no one yet
    eventually(lambda: Path(f"/proc/{dead.pid}/stat").read_text().split(") ")[1].startswith("Z"), what="a zombie")
    unit.power_off()
    (unit.home / "haproxy" / "haproxy.pid").write_text(f"{dead.pid}\n")
    try:
        assert unit.call(agent.status)["dataplane"] == {"running": False}
        assert unit.call(agent.boot)["dataplane"] == {"running": True}
        assert dead.pid not in unit.pids()
    finally:
        dead.wait()


# --- the admin's spreader and rotation ---------------------------------------------------------------


def test_drain_keeps_an_open_connection_sends_new_ones_elsewhere_and_closed_closes_it(units, real_servers):
    admin, member = units(1), units(2)
    one = real_servers("one", "127.0.14.31")
    port = next(_ports)
    body = document([service(port, [one.endpoint])], [admin, member])
    for unit in (admin, member):
        unit.call(agent.apply_config, envelope(body, 1))
    admin.call(agent.set_membership, "admin", "127.0.14.90")
    admin.call(agent.rotation, json.dumps({"1": "ready", "2": "ready"}))
    # The real server sees which node the spreader chose (Subnet Originating Requests: the node's address).
    eventually(lambda: {get(VS, port)["peer"] for _ in range(4)} == {admin.address, member.address}, what="both used")
    kept = http.client.HTTPConnection(VS, port, timeout=5)
    kept.request("GET", "/")
    node = json.loads(kept.getresponse().read())["peer"]
    drained, other = (admin, member) if node == admin.address else (member, admin)
    assert admin.call(agent.rotation, json.dumps({str(drained.id): "drain", str(other.id): "ready"})) == {
        "rotation": {str(drained.id): "drain", str(other.id): "ready"}
    }
    assert {get(VS, port)["peer"] for _ in range(6)} == {other.address}
    kept.request("GET", "/")
    assert json.loads(kept.getresponse().read())["peer"] == drained.address  # still served, by the same node
    # maint (a node Starting or Down) takes no new connections either and leaves the open ones alone.
    admin.call(agent.rotation, json.dumps({str(drained.id): "maint", str(other.id): "ready"}))
    kept.request("GET", "/")
    assert json.loads(kept.getresponse().read())["peer"] == drained.address
    admin.call(agent.rotation, json.dumps({str(drained.id): "closed", str(other.id): "ready"}))
    kept.sock.settimeout(5)
    assert kept.sock.recv(1) == b""  # closed by the admin: the drain time is over
    kept.close()
    assert get(VS, port)["peer"] == other.address


def test_a_rotation_survives_a_reload(units, real_servers):
    admin, member = units(1), units(2)
    one = real_servers("one", "127.0.14.31")
    port = next(_ports)
    for unit in (admin, member):
        unit.call(agent.apply_config, envelope(document([service(port, [one.endpoint])], [admin, member]), 1))
    admin.call(agent.set_membership, "admin", "127.0.14.90")
    admin.call(agent.rotation, json.dumps({"1": "drain", "2": "ready"}))
    servers = [{**one.endpoint, "weight": 7}]
    admin.call(agent.apply_config, envelope(document([service(port, servers)], [admin, member]), 2))
    stats = show_stat(admin)
    assert stats[(f"spread_{VS}_{port}", "node1")]["status"].startswith("DRAIN")
    assert {get(VS, port)["peer"] for _ in range(4)} == {member.address}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "must be a JSON object"),
        ("{", "must be a JSON object"),
        ('{"1": "drained"}', "node 1 state must be one of ready, drain, maint, closed"),
        ('{"one": "ready"}', "is not a node number"),
        ('{"1": null}', "state must be one of"),
    ],
)
def test_a_rotation_state_that_is_not_known_is_refused_and_changes_nothing(units, text, message):
    unit = units(1)
    unit.call(agent.rotation, '{"1": "ready"}')
    with pytest.raises(agent.AgentError, match=message):
        unit.call(agent.call, "rotation", [text])
    assert json.loads((unit.home / "haproxy" / "rotation.json").read_text()) == {"1": "ready"}


def test_a_node_with_no_route_is_never_in_the_spread(units):
    unit = units(1)
    far = {"id": 9, "address": "10.9.1.9", "enabled": True}
    body = {**document([service(80, [])], [unit]), "nodes": [{"id": 1, "address": unit.address}, far]}
    text = unit.call(dataplane.render, body, json.loads((unit.home / "node.json").read_text()), "admin", {"9": "ready"})
    line = next(line for line in text.splitlines() if "10.9.1.9" in line)
    assert line.endswith(" disabled") and "check" not in line
    assert unit.call(dataplane.spread_servers, body, json.loads((unit.home / "node.json").read_text()), "admin") == [
        (f"spread_{VS}_80", "node1", "1")
    ]

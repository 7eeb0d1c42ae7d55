"""The data plane: HAProxy, rendered from the applied configuration, reloaded without dropping a connection.

Every unit serves each TCP Virtual Service on its own address, behind the PROXY protocol; the admin
unit also accepts the Virtual Services' own addresses and spreads connections over the nodes. The
control plane moves nodes in and out of that spread with ``rotation``, through HAProxy's runtime API
(its stats socket), never with a reload. Files live in NODE_HOME/haproxy/.
"""

import contextlib
import csv
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import tempfile

from nodes.agent.formats import CHECK_URL, CHECK_URL_TEXT, DRAIN_TIME
from nodes.agent.state import AgentError, append_log, give_to_node_owner, node_owner, path, read_json, write_file

HAPROXY = "/usr/sbin/haproxy"
MAXCONN = 4000  # HAProxy needs about two open files per connection; this machine allows 20000
# ready: takes new connections; drain: none new, the open ones go on; maint: the same, for a node that
# is not drained but out (Starting, Down); closed: out, and what is still open is closed (the drain time
# is over). "closed" is said again on every send, so a drain the spreader never saw still ends closed.
ROTATION_STATES = ("ready", "drain", "maint", "closed")
SCHEDULING = {"rr": "roundrobin", "wrr": "roundrobin", "lc": "leastconn", "wlc": "leastconn", "sh": "source"}
WEIGHTED = ("wrr", "wlc")
PERSISTENCE = ("none", "source_ip", "active_cookie")
HAPROXY_MAX_WEIGHT = 256
SPREAD_CHECK = "check check-send-proxy inter 300 fall 2 rise 2"  # a dead node leaves rotation within ~1 s
TIMEOUT = 30  # seconds for haproxy -c or a start


def directory(*parts):
    return path("haproxy", *parts)


def binary(facts):
    return facts.get("haproxy") or HAPROXY


# --- rendering -----------------------------------------------------------------------------------


def render(document, facts, mode, rotation, stats_socket=None):
    """The HAProxy configuration for this unit: node side always, the spreader on the admin."""
    own = own_address(facts)
    subnets = reachable_networks(facts)
    services = served(document)
    lines = [
        "# Written by the Flotilla node agent from the applied configuration: changes here are overwritten.",
        "global",
        f"    maxconn {MAXCONN}",
        # After a reload the old process keeps its open connections, out of the rotation's reach:
        # they get at most the Node Drain Time, as a draining node's would.
        f"    hard-stop-after {drain_time(document)}s",
        f"    stats socket {stats_socket or directory('stats.sock')} mode 600 level admin expose-fd listeners",
        "",
        "defaults",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-request 10s",
        "    timeout check 2s",
        "",
    ]
    for vs in document.get("virtual_services", []):
        if vs.get("enabled", True) and vs.get("protocol", "tcp") == "udp":
            lines.append(f"# {endpoint(vs)} is UDP: HAProxy cannot serve UDP, so this unit does not serve it")
    if services and own is None:
        raise AgentError("node.json names no interface address: this unit has no address to serve on")
    for port, group in by_port(services):
        lines += node_frontend(own, port, group)
    for vs in services:
        lines += service_backend(vs, own, subnets)
    if mode == "admin":
        for vs in services:
            lines += spread(vs, document.get("nodes", []), rotation, subnets)
    return "\n".join(lines) + "\n"


def drain_time(document):
    value = (document.get("cluster") or {}).get("drain_time", DRAIN_TIME.default)
    return value if value in DRAIN_TIME else DRAIN_TIME.default


def own_address(facts):
    """The first address of the first interface: where the admin's spreader reaches this unit."""
    for interface in facts.get("interfaces") or []:
        for address in interface.get("addresses") or []:
            return str(ipaddress.ip_interface(address).ip)
        return None
    return None


def reachable_networks(facts):
    """None when the unit has a gateway (anything is reachable), else the subnets it is attached to."""
    if facts.get("gateway"):
        return None
    return [
        ipaddress.ip_interface(address).network
        for interface in facts.get("interfaces") or []
        for address in interface.get("addresses") or []
    ]


def reachable(address, subnets):
    # No traffic may leave the unit's own subnets without a gateway to carry it (on the test machine:
    # nothing leaves 127.0.0.0/8).
    return subnets is None or any(ipaddress.ip_address(address) in net for net in subnets)


def served(document):
    """The enabled TCP Virtual Services, each checked: nothing unchecked reaches HAProxy's file."""
    return [checked(vs) for vs in document.get("virtual_services", []) if vs.get("enabled", True) and is_tcp(vs)]


def is_tcp(vs):
    protocol = vs.get("protocol", "tcp")
    if protocol not in ("tcp", "udp"):
        raise AgentError(f"virtual service {endpoint(vs)}: protocol must be tcp or udp")
    return protocol == "tcp"


def checked(vs):
    where = f"virtual service {endpoint(vs)}"
    ipv4(vs.get("address"), where, "address")
    whole(vs.get("port"), 1, 65535, where, "port")
    rules = (
        ("layer", (7, 4), 7),
        ("scheduling", tuple(SCHEDULING), "rr"),
        ("persistence", PERSISTENCE, "none"),
    )
    for field, valid, default in rules:
        if vs.get(field, default) not in valid:
            raise AgentError(f"{where}: {field} must be one of {', '.join(map(str, valid))}")
    whole(vs.get("persistence_timeout", 360), 1, 604800, where, "persistence_timeout")
    whole(vs.get("check_status", 200), 100, 599, where, "check_status")
    url = vs.get("check_url", "/")
    if not isinstance(url, str) or not CHECK_URL.fullmatch(url):
        raise AgentError(f"{where}: check_url must be {CHECK_URL_TEXT}")
    for rs in vs.get("real_servers", []):
        ipv4(rs.get("address"), where, "real server address")
        whole(rs.get("port"), 1, 65535, where, "real server port")
        whole(rs.get("weight", 1000), 1, 65535, where, "real server weight")
    return vs


def ipv4(value, where, field):
    try:
        ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, TypeError) as exc:
        raise AgentError(f"{where}: {field} must be an IPv4 address") from exc


def whole(value, low, high, where, field):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise AgentError(f"{where}: {field} must be a whole number {low}-{high}")


def endpoint(vs):
    return f"{vs.get('address')}:{vs.get('port')}"


def backend_name(vs):
    return f"vs_{vs['address']}_{vs['port']}"


def spread_name(vs):
    return f"spread_{vs['address']}_{vs['port']}"


def by_port(services):
    ports = {}
    for vs in services:
        ports.setdefault(vs["port"], []).append(vs)
    return sorted(ports.items())


def node_frontend(own, port, group):
    # One listener per port: two frontends on one address and port would share it through
    # SO_REUSEPORT and take each other's connections. A port that also carries Layer 4 services is a
    # TCP frontend; HAProxy upgrades a connection switched to an HTTP backend by itself.
    http = all(vs.get("layer", 7) == 7 for vs in group)
    lines = [
        f"frontend serve_{port}",
        f"    mode {'http' if http else 'tcp'}",
        # The admin's spreader speaks the PROXY protocol: src and dst are then the client's own.
        f"    bind {own}:{port} accept-proxy",
    ]
    lines += [f"    use_backend {backend_name(vs)} if {{ dst {vs['address']} }}" for vs in group]
    return [*lines, ""]


def service_backend(vs, own, subnets):
    layer7 = vs.get("layer", 7) == 7
    scheduling = vs.get("scheduling", "rr")
    persistence = vs.get("persistence", "none")
    timeout = vs.get("persistence_timeout", 360)
    lines = [f"backend {backend_name(vs)}", f"    # {printable(vs.get('name', ''))}"]
    lines += [f"    mode {'http' if layer7 else 'tcp'}", f"    balance {SCHEDULING[scheduling]}"]
    if layer7:
        lines += ["    option forwardfor"]
    if persistence == "source_ip":
        lines += [f"    stick-table type ip size 100k expire {timeout}s", "    stick on src"]
    cookies = persistence == "active_cookie" and layer7
    if cookies:
        lines += [f"    cookie FLOTILLA insert indirect nocache maxidle {timeout}s"]
    elif persistence == "active_cookie":
        lines += ["    # Active Cookie persistence needs Layer 7: not rendered for a Layer 4 service"]
    if layer7:
        lines += [f"    option httpchk GET {vs.get('check_url', '/')}"]
        lines += [f"    http-check expect status {vs.get('check_status', 200)}"]
    if vs.get("transparency"):
        lines += ["    # Transparency is not rendered: real servers see this node's address, not the client's"]
    if vs.get("subnet_originating", True):
        lines += [f"    source {own}"]
    weights = scaled_weights(vs.get("real_servers", [])) if scheduling in WEIGHTED else None
    for n, rs in enumerate(vs.get("real_servers", [])):
        lines += real_server(rs, n, weights, cookies, subnets)
    return [*lines, ""]


def scaled_weights(servers):
    """LoadMaster weights are 1-65535, HAProxy's 1-256: the largest in the backend becomes 256."""
    if not servers:
        return []
    top = max(rs.get("weight", 1000) for rs in servers)
    return [max(1, round(rs.get("weight", 1000) * HAPROXY_MAX_WEIGHT / top)) for rs in servers]


def real_server(rs, n, weights, cookies, subnets):
    words = [f"server rs_{rs['address']}_{rs['port']} {rs['address']}:{rs['port']}"]
    if weights is not None:
        words.append(f"weight {weights[n]}")
    if cookies:
        words.append(f"cookie rs{n + 1}")
    if not reachable(rs["address"], subnets):
        return ["    # no route from this node: never connected to, not even checked", f"    {words[0]} disabled"]
    words.append("check inter 2s")
    if not rs.get("enabled", True):
        words.append("disabled")
    return ["    " + " ".join(words)]


def spread(vs, nodes, rotation, subnets):
    name = spread_name(vs)
    lines = [
        f"frontend {name}",
        "    mode tcp",
        # transparent: IP_TRANSPARENT, so the Virtual Service's address need not be on this machine yet.
        f"    bind {vs['address']}:{vs['port']} transparent",
        f"    default_backend {name}",
        "",
        f"backend {name}",
        "    mode tcp",
        "    balance leastconn",
        # A node that died since its last check refuses the connection: it goes to another node at
        # once instead of failing the client (the seed: traffic for a failed node goes to the others).
        "    timeout connect 1s",
        "    retries 2",
        "    option redispatch 1",
    ]
    for node in nodes:
        ipv4(node.get("address"), "node", "address")
        server = f"server node{node['id']} {node['address']}:{vs['port']} send-proxy-v2"
        if not reachable(node["address"], subnets):
            lines += ["    # no route from this node: never connected to, not even checked", f"    {server} disabled"]
            continue
        # Only "ready" takes new connections; a reload leaves open ones with the old process.
        ready = rotation.get(str(node["id"])) == "ready"
        lines.append(f"    {server} {SPREAD_CHECK}" + ("" if ready else " disabled"))
    return [*lines, ""]


def spread_servers(document, facts, mode):
    """(backend, server, node id) of every spread server the runtime API may move: reachable ones only."""
    if mode != "admin":
        return []
    subnets = reachable_networks(facts)
    return [
        (spread_name(vs), f"node{node['id']}", str(node["id"]))
        for vs in served(document)
        for node in document.get("nodes", [])
        if reachable(node["address"], subnets)
    ]


def printable(text):
    return "".join(c if c.isprintable() else "?" for c in str(text))[:80]


# --- the process -----------------------------------------------------------------------------------


def unit_facts():
    """node.json, when it names this unit's own address; None otherwise: then there is nothing to serve on
    and no HAProxy is run (a bare state directory, as in the control plane's own tests)."""
    facts = read_json("node.json", {})
    try:
        return facts if own_address(facts) else None
    except ValueError:
        return None


def ensure_directory():
    where = directory()
    os.makedirs(where, exist_ok=True)
    give_to_node_owner(where)
    return where


def running_pids():
    try:
        with open(directory("haproxy.pid"), encoding="ascii") as f:
            pids = [int(word) for word in f.read().split()]
    except (OSError, ValueError):
        return []
    return [pid for pid in pids if is_haproxy(pid)]


def is_haproxy(pid):
    """A live haproxy: a stale pid file may name a process that reused the number, and a killed
    HAProxy stays a zombie until the init system reaps it (it serves nothing, yet keeps its name)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            name, _, rest = f.read().partition("(")[2].rpartition(")")
    except OSError:
        return False
    return name == "haproxy" and rest.split()[:1] not in (["Z"], ["X"])


def run_haproxy(facts, *args):
    """Run the haproxy binary as the owner of NODE_HOME, so that the node's user can reload what root started."""
    owner = node_owner()
    as_owner = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
    with tempfile.TemporaryFile() as output:
        # A file, not a pipe: the daemon keeps no end of it open for us to wait on.
        done = subprocess.run(
            [binary(facts), *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            # HAProxy goes back to the directory it started in: one the node's user may enter.
            cwd=directory(),
            timeout=TIMEOUT,
            check=False,
            **as_owner,
        )
        output.seek(0)
        return done.returncode, output.read().decode(errors="replace")


def alerts(output):
    """HAProxy's own reasons, without its banner and its closing summary."""
    found = []
    for line in output.splitlines():
        if "[ALERT]" not in line:
            continue
        reason = line.split(" : ", 1)[-1].strip()
        if reason.startswith("config : "):
            reason = reason[len("config : ") :]
        if not reason.startswith(("Error(s) found", "Fatal errors found")):
            found.append(reason)
    return "; ".join(found or [line.strip() for line in output.splitlines()[-2:]])[:1000]


def start_or_reload(text, facts):
    """Check the configuration, then start HAProxy on it or hand the running one's sockets over to it.

    A refusal, or a new process that cannot start, leaves haproxy.cfg and the running HAProxy as they were.
    """
    ensure_directory()
    config, candidate = directory("haproxy.cfg"), directory("haproxy.cfg.new")
    pidfile, new_pidfile = directory("haproxy.pid"), directory("haproxy.pid.new")
    write_file(candidate, text.encode(), 0o644)
    code, output = run_haproxy(facts, "-c", "-f", candidate)
    if code != 0:
        os.unlink(candidate)
        raise AgentError("HAProxy refused the configuration: " + alerts(output))
    old = running_pids()
    args = ["-D", "-f", candidate, "-p", new_pidfile]
    if old and os.path.exists(directory("stats.sock")):
        args += ["-x", directory("stats.sock")]  # the listening sockets are handed over, not reopened
    # No -sf: with it the new process pauses the old one's listeners before it binds its own, and
    # a new process that then fails (a port taken) leaves them paused for a while: clients refused.
    # The old processes are told to finish softly here instead, once the new one runs.
    code, output = run_haproxy(facts, *args)
    if code != 0:
        os.unlink(candidate)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(new_pidfile)
        raise AgentError("HAProxy could not start on the configuration: " + alerts(output))
    for pid in old:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)  # soft stop: no new connections, the open ones finish
    os.replace(new_pidfile, pidfile)
    os.replace(candidate, config)
    append_log("info", "Data plane reloaded" if old else "Data plane started")


def refresh(document, mode, facts=None):
    """Make the running HAProxy serve document in mode (start it if it is not running); no-op without facts."""
    facts = unit_facts() if facts is None else facts
    if facts is None:
        return
    rotation = read_rotation()
    text = render(document, facts, mode, rotation)
    # What HAProxy runs but for the rotation, which the runtime API keeps current: a change that
    # renders the same (Enable, Disable, a cluster parameter, the network) reloads nothing, so a
    # draining node's open connections stay with the process that the rotation still reaches.
    basis = hashlib.sha256(render(document, facts, mode, {}).encode()).hexdigest()
    current = None
    with contextlib.suppress(OSError), open(directory("haproxy.basis"), encoding="ascii") as f:
        current = f.read().strip()
    if current == basis and running_pids():
        return
    start_or_reload(text, facts)
    write_file(directory("haproxy.basis"), basis.encode(), 0o644)
    # The new process starts with rotation as rendered (ready or disabled); drain is a runtime state.
    apply_states(spread_servers(document, facts, mode), rotation)


def stop():
    """Stop this unit's HAProxy (SIGTERM to each process in the pid file); returns their pids."""
    pids = running_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return pids


# --- the runtime API ---------------------------------------------------------------------------------


def runtime(commands, timeout=2.0):
    """Send commands to HAProxy's stats socket in one round trip; returns what it answered."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(directory("stats.sock"))
        sock.sendall(("; ".join(commands) + "\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def read_rotation():
    return read_json(os.path.join("haproxy", "rotation.json"), {})


def check_rotation(text):
    try:
        rotation = json.loads(text)
    except ValueError as exc:
        raise AgentError(f"rotation must be a JSON object: {exc}") from exc
    if not isinstance(rotation, dict):
        raise AgentError('rotation must be a JSON object such as {"1": "ready", "2": "drain"}')
    for node, state in rotation.items():
        if not node.isdigit() or node.startswith("0"):
            raise AgentError(f"rotation: {printable(node)!r} is not a node number")
        if state not in ROTATION_STATES:
            raise AgentError(f"rotation: node {node} state must be one of {', '.join(ROTATION_STATES)}")
    return rotation


def apply_states(servers, rotation):
    """Move the spread servers to their rotation states, closing the open connections of the closed ones."""
    commands = []
    for backend, server, node in servers:
        state = rotation.get(node, "maint")
        commands.append(f"set server {backend}/{server} state {'maint' if state == 'closed' else state}")
        if state == "closed":
            commands.append(f"shutdown sessions server {backend}/{server}")
    if not commands:
        return
    answer = runtime(commands).strip()
    if answer:
        raise AgentError(f"HAProxy did not take the rotation: {answer[:500]}")


def set_rotation(text, document, mode):
    """Save the rotation and, on the admin, apply it to the running spreader (no reload)."""
    rotation = check_rotation(text)
    ensure_directory()
    write_file(directory("rotation.json"), json.dumps(rotation, sort_keys=True, indent=1).encode(), 0o644)
    facts = unit_facts()
    if facts is not None and running_pids():
        apply_states(spread_servers(document, facts, mode), rotation)
    return {"rotation": rotation}


def traffic_stats():
    """Current connections and requests per second of the node-side frontends; zeros if HAProxy is not up."""
    try:
        answer = runtime(["show stat"], timeout=0.5)
    except OSError:
        return {"connections": 0, "requests_per_second": 0, "running": False}
    lines = answer.splitlines()
    rows = csv.DictReader([lines[0].removeprefix("# "), *lines[1:]]) if lines else []
    connections = rate = 0
    for row in rows:
        if row.get("svname") == "FRONTEND" and not row.get("pxname", "").startswith("spread_"):
            connections += int(row.get("scur") or 0)
            rate += int(row.get("req_rate") or 0)
    return {"connections": connections, "requests_per_second": rate, "running": True}

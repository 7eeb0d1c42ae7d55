"""Traffic through the cluster: throughput against one plain HAProxy, and no failed request while nodes go.

A real local cluster on 127.0.12.x set up as `make demo` does (see detection.py), every node
running HAProxy: the admin node spreads each connection to a Virtual Service over the nodes
(TCP, PROXY protocol v2), each node balances it at Layer 7 over three real servers. A real
server's answer names itself and its peer, which is the node that carried the request (backends
originate from the node's address).

Two Virtual Services on the same address: the throughput figures go through one whose real servers
are HAProxy responders (one HAProxy process answering from itself, far faster than the proxies in
front of it), so that the proxies are the bound; the drain, kill and rolling reboot go through one
whose real servers are tests/harness/real_servers.py, which can hold an answer (/slow).

Every load generator here is bounded: wrk runs for WRK_SECONDS with WRK_CONNECTIONS, and the
client loops have CLIENT_THREADS threads, one connection each at a time, for at most LOOP_CAP_S
(ROLLING_CAP_S for the rolling reboot, which takes three nodes out one after the other).
"""

# ruff: noqa: E402 -- the project path must be set up before the imports below

import http.client
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))  # run as a script: make the project importable

from bench.detection import login
from tests.harness import ROOT, Cluster, HarnessError
from tests.harness.local_cluster import stop_pidfile, wait_for_port
from tests.harness.real_servers import RealServers

PREFIX = "127.0.12"
VS_ADDRESS, VS_PORT = f"{PREFIX}.100", 8080
FAST_PORT = 8081  # the throughput's Virtual Service, on VS_ADDRESS, over the responders
SINGLE_ADDRESS, SINGLE_PORT = f"{PREFIX}.99", 8081  # one plain HAProxy, no PROXY protocol, for comparison
RESPONDERS = [(f"hap{i}", f"{PREFIX}.{210 + i}", 8080) for i in (1, 2, 3)]
WRK_THREADS, WRK_CONNECTIONS, WRK_SECONDS = 2, 32, 5
CLIENT_THREADS = 8
CLIENT_SOURCES = [f"{PREFIX}.{110 + i}" for i in range(CLIENT_THREADS)]
REQUEST_TIMEOUT_S = 5
LOOP_CAP_S = 20
ROLLING_CAP_S = 120
ROUTE_WAIT_S = 30
WARMUP_S = 2  # NODE_WARMUP_SECONDS: Starting lasts this long instead of 30 s, or the bench would mostly wait
DRAIN_TIME_S = 3  # Node Drain Time, set through the product: Disabled this long after Disable
NODES = (1, 2, 3, 4)
RESULT = BASE_DIR / "bench" / "results" / "traffic.json"
ANSWER = re.compile(r"^(\w+) (\S+):(\d+) from (\S+)\n$")
ROW = re.compile(r'<tr data-node="(\d+)" data-status="([\w-]+)".*?/cluster-control/node/(\d+)/', re.S)
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
WORK = ROOT / "bench-traffic"


class BenchError(RuntimeError):
    pass


# --- machine and load generators ----------------------------------------------------------------


def machine():
    haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.splitlines()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)  # prints its version, exits 1
    return {
        "nproc": os.cpu_count(),
        "haproxy": haproxy[0] if haproxy else None,
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else None,
        "python": sys.version.split()[0],
        # Other test suites share this machine: the load says how far these numbers are to be trusted.
        "loadavg_at_start": os.getloadavg(),
    }


def _ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)


def pids_of(pidfile):
    try:
        return [int(word) for word in Path(pidfile).read_text().split()]
    except (OSError, ValueError):
        return []


def _cpu_of(stat):
    """User + system CPU seconds in a /proc/PID/stat line (all the process's threads)."""
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15 of proc(5)


def cpu_seconds(pids):
    """CPU seconds the processes have used so far; 0 for a gone one."""
    total = 0.0
    for pid in pids:
        try:
            total += _cpu_of(Path(f"/proc/{pid}/stat").read_text())
        except OSError:
            continue
    return total


def every_process():
    """{pid: (label, CPU seconds so far)} of every process on the machine, kernel threads included."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [Path(w.decode(errors="replace")).name for w in argv if w and not w.startswith(b"-")][:2]
        label = " ".join(words) or stat.partition("(")[2].rpartition(")")[0]
        found[int(entry.name)] = (label[:60], _cpu_of(stat))
    return found


def others(before, after, measured, top=8):
    """The processes outside the measured roles that used the most CPU between two every_process()."""
    by_label = {}
    for pid, (label, seconds) in after.items():
        if pid not in measured:
            used = seconds - before.get(pid, (label, 0.0))[1]
            by_label[label] = by_label.get(label, 0.0) + used
    ranked = sorted(by_label.items(), key=lambda item: -item[1])[:top]
    return {label: round(seconds, 2) for label, seconds in ranked if seconds >= 0.05}


def machine_busy_seconds():
    user, nice, system, idle, iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk(address, port, processes=None):
    """wrk's figures for one bounded run against http://address:port/; errors counted, not hidden.

    processes, {role: [pid]}: the CPU each role used meanwhile, so that a figure says where the cores went.
    """
    url = f"http://{address}:{port}/"
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s", "--latency", url]
    processes = processes or {}
    before = {role: cpu_seconds(pids) for role, pids in processes.items()}
    processes_before = every_process()
    before_wrk, before_busy, started = children_cpu_seconds(), machine_busy_seconds(), time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=WRK_SECONDS + 30, check=True).stdout
    wall = time.monotonic() - started
    measured = {pid for pids in processes.values() for pid in pids} | {os.getpid()}
    elsewhere = others(processes_before, every_process(), measured)
    cpu = {role: cpu_seconds(pids) - before[role] for role, pids in processes.items()}
    cpu["wrk"] = children_cpu_seconds() - before_wrk  # wrk is the only child waited for meanwhile
    busy = machine_busy_seconds() - before_busy
    result = {"url": url, "argv": argv[:-1]}
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}%\s+(\S+)$", out, re.M)
        result[f"latency_p{pct}_ms"] = _ms(found.group(1)) if found else None
    result["cpu_s"] = {role: round(seconds, 2) for role, seconds in cpu.items()}
    # The rest of the busy cores: the loopback's softirq work not charged to a process, the cluster's
    # control plane, and whatever else runs on the machine.
    result["cpu_s"]["machine_busy"] = round(busy, 2)
    result["cpu_s_elsewhere"] = elsewhere  # wrk exited before the count: it is in cpu_s, not here
    result["busy_cores"] = round(busy / wall, 2)
    if result["requests"]:
        result["cpu_us_per_request"] = {
            role: round(seconds * 1e6 / result["requests"], 1) for role, seconds in result["cpu_s"].items()
        }
    return result


def get(address, port, path="/", source=None, timeout=REQUEST_TIMEOUT_S):
    """One request on a new connection: (real server, node number or None, error or None)."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout, source_address=(source or "", 0))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()
    answer = ANSWER.match(body)
    if response.status != 200 or not answer:
        return None, None, f"HTTP {response.status}: {body[:80]!r}"
    peer = answer.group(4)
    node = int(peer.rsplit(".", 1)[1]) if peer.rsplit(".", 1)[0] == PREFIX else None
    return answer.group(1), node, None


class Loop:
    """CLIENT_THREADS clients, each a new connection per request, until stopped or cap_s is over.

    Each sample is (started, ended, node, error), times on the monotonic clock. Each thread has
    its own source address: new connections to one address would otherwise run through the
    ephemeral ports, and a port exhaustion is the client's failure, not the cluster's.
    """

    def __init__(self, cap_s=LOOP_CAP_S, path="/"):
        self.cap_s, self.path = cap_s, path
        self.samples = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(source,)) for source in CLIENT_SOURCES]

    def _run(self, source):
        deadline = time.monotonic() + self.cap_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            _, node, error = get(VS_ADDRESS, VS_PORT, self.path, source=source)
            self.samples.append((started, time.monotonic(), node, error))  # list.append is atomic

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def summary(self, since=None, victim=None):
        """since: the fault's moment; victim: the node it struck (None: any), for the requests in flight then."""
        samples = self.samples
        failures = [s for s in samples if s[3]]
        by_node = {}
        for _, _, node, error in samples:
            if not error:
                by_node[str(node)] = by_node.get(str(node), 0) + 1
        span = (max(s[1] for s in samples) - min(s[0] for s in samples)) if samples else 0
        result = {"requests": len(samples), "failed": len(failures), "by_node": by_node}
        result["rps"] = round(len(samples) / span, 1) if span else 0
        result["failures"] = sorted({s[3] for s in failures})[:5]  # the kinds, not thousands of lines
        durations = sorted(s[1] - s[0] for s in samples)
        result["p99_ms"] = round(durations[int(len(durations) * 0.99)] * 1000, 1) if durations else None
        if since is not None:
            # A failed request has no node: it counts as the victim's when it was in flight at the fault.
            result["in_flight_at_fault"] = sum(
                1 for s in samples if s[0] <= since < s[1] and (victim is None or s[2] == victim or s[3])
            )
        if since is not None and failures:
            result["first_failure_s"] = round(min(s[0] for s in failures) - since, 3)
            result["last_failure_s"] = round(max(s[1] for s in failures) - since, 3)
        return result

    def last_start_via(self, node, since):
        """Seconds from since to the start of the last successful request that node carried (0 if none),
        and whether it still carried requests in the window's last second: then the figure is only the window."""
        starts = [s[0] for s in self.samples if s[2] == node and not s[3] and s[0] >= since]
        if not starts:
            return 0.0, False
        return round(max(starts) - since, 3), max(starts) > max(s[0] for s in self.samples) - 1


# --- plain HAProxy processes: the comparison and the responders ---------------------------------


def single_haproxy_config(servers):
    lines = "".join(f"    server {name} {address}:{port}\n" for name, address, port in servers)
    # As close to a node's Layer 7 frontend as plain HAProxy gets: the same balancing, keep-alive on
    # both sides, X-Forwarded-For and the same kind of source address, but no PROXY protocol in front.
    return f"""global
    maxconn 4000

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend bench
    bind {SINGLE_ADDRESS}:{SINGLE_PORT}
    default_backend real_servers

backend real_servers
    balance roundrobin
    option forwardfor
    source {SINGLE_ADDRESS}
{lines}"""


def responders_config(servers):
    # The answer of tests/harness/real_servers.py, so that the same check tells which node carried it.
    frontends = "".join(
        f"""
frontend {name}
    bind {address}:{port}
    http-request return status 200 content-type text/plain lf-string "{name} %[dst]:%[dst_port] from %[src]\\n"
"""
        for name, address, port in servers
    )
    return f"""global
    maxconn 4000

defaults
    mode http
    timeout client 30s
    timeout http-request 10s
{frontends}"""


class PlainHaproxy:
    """One HAProxy process of the bench's own, in WORK/name; stopped by stop() or on leaving a with block."""

    def __init__(self, name, config, listens):
        self.dir = WORK / name
        self.config = self.dir / "haproxy.cfg"
        self.pidfile = self.dir / "haproxy.pid"
        self.text, self.listens = config, listens

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        stop_pidfile(self.pidfile)  # a crashed run's
        self.config.write_text(self.text)
        try:
            self._haproxy("-c", "-q", "-f", str(self.config))
            self._haproxy("-D", "-f", str(self.config), "-p", str(self.pidfile))
            for address, port in self.listens:
                wait_for_port(address, port, timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def _haproxy(self, *args):
        # A refusal ends the run like any other: with HAProxy's own words, and what was measured so far written.
        done = subprocess.run(["haproxy", *args], capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise BenchError(f"haproxy {' '.join(args)}: {(done.stderr or done.stdout).strip()[-500:]}")

    def stop(self):
        stop_pidfile(self.pidfile)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def single_haproxy(servers):
    return PlainHaproxy("single-haproxy", single_haproxy_config(servers), [(SINGLE_ADDRESS, SINGLE_PORT)])


def responders():
    return PlainHaproxy("responders", responders_config(RESPONDERS), [(a, p) for _, a, p in RESPONDERS])


# --- the cluster through its shared WUI ---------------------------------------------------------


class Wui:
    """The shared WUI as an operator's browser uses it: logged in, with the form's CSRF token."""

    def __init__(self, base, password, ca_file):
        self.base = base
        self.opener = login(base, password, ca_file)

    def fetch(self, path, data=None, fragment=False):
        headers = {"Referer": f"{self.base}{path}"}
        if fragment:
            headers["HX-Request"] = "true"
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=body, headers=headers)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            # A refusal is a page with the reason: say it, not just the status.
            alert = re.search(r'role="alert"[^>]*>(.*?)</(?:p|div|ul)>', exc.read().decode(errors="replace"), re.S)
            reason = " ".join(re.sub(r"<[^>]+>", " ", alert.group(1)).split()) if alert else exc.reason
            raise BenchError(f"{path}: HTTP {exc.code}: {reason}") from exc

    def post(self, path, fields, form_page):
        token = TOKEN.search(self.fetch(form_page)).group(1)
        return self.fetch(path, {"csrfmiddlewaretoken": token, **fields})

    def rows(self):
        """{node number: (status, node pk)} from Cluster Control's live table."""
        return {
            int(n): (status, int(pk)) for n, status, pk in ROW.findall(self.fetch("/cluster-control/", fragment=True))
        }

    def status(self, n):
        return self.rows().get(n, (None, None))[0]

    def act(self, n, action):
        pk = self.rows()[n][1]
        self.post(f"/cluster-control/node/{pk}/{action}", {}, "/cluster-control/")

    def wait(self, n, wanted, timeout, poll=0.1):
        """Seconds until node n shows one of the wanted statuses; BenchError after timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.status(n) in wanted:
                return round(time.monotonic() - started, 3)
            time.sleep(poll)
        raise BenchError(f"node {n} did not show {'/'.join(wanted)} within {timeout} s (now {self.status(n)})")

    def service_pk(self, address, port):
        listing = self.fetch("/virtual-services/")
        found = re.search(rf'data-vs="{re.escape(address)}:{port}">\s*<td><a href="/virtual-services/(\d+)/"', listing)
        if not found:
            raise BenchError(f"Virtual Services lists no {address}:{port}")
        return int(found.group(1))

    def add_service(self, name, port, like):
        """A new Virtual Service on like's address, its settings copied from like's page: those the cluster took."""
        source = self.service_pk(*like)
        form = FormFields(f"/virtual-services/{source}/")
        form.feed(self.fetch(f"/virtual-services/{source}/"))
        self.post("/virtual-services/add", form.fields | {"name": name, "port": port}, "/virtual-services/add")
        return self.service_pk(like[0], port)

    def add_real_servers(self, pk, servers):
        for _, address, port in servers:
            fields = {"address": address, "port": port, "weight": 1, "enabled": "on"}
            self.post(f"/virtual-services/{pk}/real-servers/add", fields, f"/virtual-services/{pk}/")


class FormFields(HTMLParser):
    """What a browser would submit from the form that posts to action, as the page filled it in."""

    def __init__(self, action):
        super().__init__()
        self.action, self.fields = action, {}
        self._inside, self._select = False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._inside = attrs.get("action") == self.action
        elif not self._inside or attrs.get("name") == "csrfmiddlewaretoken":
            return  # the token is the one of the page posted from
        elif tag == "input" and attrs.get("name") and attrs.get("type") != "submit":
            if attrs.get("type") != "checkbox":
                self.fields[attrs["name"]] = attrs.get("value") or ""
            elif "checked" in attrs:
                self.fields[attrs["name"]] = attrs.get("value") or "on"
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False
        elif tag == "select":
            self._select = None


def carried_by(n, timeout):
    """Wait until a request through the Virtual Service is carried by node n: it is in rotation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _ in range(len(NODES) * 2):  # round robin over the nodes: a few tries reach each
            if get(VS_ADDRESS, VS_PORT)[1] == n:
                return
        time.sleep(0.1)
    raise BenchError(f"node {n} carried no request through {VS_ADDRESS}:{VS_PORT} within {timeout} s")


def wait_for_routing(port, servers):
    """The admin's HAProxy answers on VS_ADDRESS:port with one of these real servers, through every node."""
    names = {name for name, _, _ in servers}
    deadline = time.monotonic() + ROUTE_WAIT_S
    last = None
    while time.monotonic() < deadline:
        server, node, last = get(VS_ADDRESS, port, timeout=1)
        if server in names:
            break
        last = last or f"answered by {server}, not one of {sorted(names)}"
        time.sleep(0.2)
    else:
        raise BenchError(
            f"nothing routed http://{VS_ADDRESS}:{port}/ to a real server within {ROUTE_WAIT_S} s (last: {last}): "
            "the admin node's HAProxy is not running or not rendering the Virtual Service; is the data plane in?"
        )
    seen, started = set(), time.monotonic()
    while seen != set(NODES) and time.monotonic() - started < ROUTE_WAIT_S:
        server, node, _ = get(VS_ADDRESS, port, timeout=1)
        if server in names:
            seen.add(node)
        seen.discard(None)
    if seen != set(NODES):
        raise BenchError(
            f"only nodes {sorted(seen)} carried requests to {VS_ADDRESS}:{port} within {ROUTE_WAIT_S} s, "
            f"not all of {NODES}"
        )


def build_cluster(password):
    # As detection.py's, and Starting lasts WARMUP_S: the status is the product's, only shorter.
    hosts = ",".join(f"{PREFIX}.{n}" for n in (*NODES, 90))
    env = {"FLOTILLA_ADMIN_PASSWORD": password, "ALLOWED_HOSTS": hosts, "NODE_WARMUP_SECONDS": str(WARMUP_S)}
    return Cluster(size=len(NODES), prefix=PREFIX, web=True, fresh=True, wui_env=env)


def create_cluster(cluster):
    """What `manage.py demo` does, with the bench's Virtual Service: node 1 creates, the others join, enabled."""
    joins = [f"{node.address}={node.agent('offer-join')['code']}" for node in cluster.nodes[1:]]
    admin = cluster.node(1)
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "bootstrap_cluster"]
    argv += ["--shared-address", cluster.shared_address, "--enable"]
    argv += ["--virtual-service", "Bench web", VS_ADDRESS, str(VS_PORT), "--join", *joins]
    subprocess.run(argv, env=admin.env("shared"), check=True, cwd=BASE_DIR)
    admin.restart()  # the admin unit comes back on the shared address with the worker


def setup_cluster(cluster, password, real_servers):
    cluster.start()
    create_cluster(cluster)
    wui = Wui(cluster.shared_url, password, cluster.ca_file)
    wui.post("/cluster-control/parameter/drain_time", {"drain_time": DRAIN_TIME_S}, "/cluster-control/")
    wui.add_real_servers(wui.service_pk(VS_ADDRESS, VS_PORT), real_servers.servers)
    for n in NODES[1:]:
        wui.wait(n, ("up",), timeout=60)
    wait_for_routing(VS_PORT, real_servers.servers)
    return wui


def throughput(cluster, wui, fast, result):
    """wrk through the cluster and through one plain HAProxy, both over the responders, the cluster up for both."""
    pk = wui.add_service("Bench throughput", FAST_PORT, like=(VS_ADDRESS, VS_PORT))
    wui.add_real_servers(pk, RESPONDERS)
    wait_for_routing(FAST_PORT, RESPONDERS)
    with single_haproxy(RESPONDERS) as single:
        server, _, error = get(SINGLE_ADDRESS, SINGLE_PORT)
        if server not in {name for name, _, _ in RESPONDERS}:
            raise BenchError(f"{SINGLE_ADDRESS}:{SINGLE_PORT} did not answer from a responder: {error or server}")
        roles = {"single_haproxy": pids_of(single.pidfile), "responders": pids_of(fast.pidfile)}
        result["single_haproxy"] = wrk(SINGLE_ADDRESS, SINGLE_PORT, roles)
    print(f"single HAProxy: {result['single_haproxy']['rps']:.0f} requests/s", flush=True)
    # node1 is the admin node: its one HAProxy is both the spreader and node 1's Layer 7 frontend.
    roles = {f"node{n}": pids_of(cluster.node(n).home / "haproxy" / "haproxy.pid") for n in NODES}
    result["cluster"] = wrk(VS_ADDRESS, FAST_PORT, roles | {"responders": pids_of(fast.pidfile)})
    result["cluster_rps"] = result["cluster"]["rps"]
    result["single_haproxy_rps"] = result["single_haproxy"]["rps"]
    result["ratio"] = round(result["cluster_rps"] / result["single_haproxy_rps"], 3)
    print(f"cluster: {result['cluster_rps']:.0f} requests/s (ratio {result['ratio']})", flush=True)


# --- scenarios -----------------------------------------------------------------------------------


def back_in_rotation(wui, n):
    wui.act(n, "enable")
    wui.wait(n, ("up",), timeout=60)
    carried_by(n, timeout=30)


def drain(wui):
    """Disable node 2 under load: no request fails, node 2 takes no new connection, open ones finish."""
    victim = 2
    held = []

    def slow():
        held.append(get(VS_ADDRESS, VS_PORT, f"/slow?s={DRAIN_TIME_S - 1}", timeout=DRAIN_TIME_S + 5))

    with Loop() as loop:
        time.sleep(2)
        # Requests in flight on every node when the drain starts: those on node 2 must still finish.
        slow_threads = [threading.Thread(target=slow) for _ in range(len(NODES) * 2)]
        for thread in slow_threads:
            thread.start()
        time.sleep(0.3)
        disabled = time.monotonic()
        wui.act(victim, "disable")
        draining_shown = wui.wait(victim, ("draining", "disabled"), timeout=10)
        time.sleep(max(0.0, disabled + 10 - time.monotonic()))
    for thread in slow_threads:
        thread.join()
    result = loop.summary(since=disabled, victim=victim)
    after, still = loop.last_start_via(victim, disabled)
    result["no_new_connections_after_s"], result["still_taking_at_end"] = after, still
    result["requests_via_node_after_disable"] = sum(1 for s in loop.samples if s[2] == victim and s[0] > disabled)
    result["page_draining_after_s"] = draining_shown
    result["held_requests"] = len(held)
    result["held_via_node"] = sum(1 for _, node, _ in held if node == victim)
    result["held_failed"] = sum(1 for _, _, error in held if error)
    wui.wait(victim, ("disabled",), timeout=DRAIN_TIME_S + 10)
    back_in_rotation(wui, victim)
    return result


def kill(cluster, wui):
    """Node 3's services die under load: how many requests fail, and for how long node 3 gets any."""
    victim = cluster.node(3)
    stopped = []
    with Loop() as loop:
        time.sleep(2)
        # The node's data plane dies at once (SIGKILL, as a power cut), then the rest of its services:
        # the failures and the recovery are counted from the moment it stopped carrying traffic.
        killed = time.monotonic()
        for pid in pids_of(victim.home / "haproxy" / "haproxy.pid"):
            os.kill(pid, signal.SIGKILL)
        stopper = threading.Thread(target=lambda: (victim.stop(), stopped.append(time.monotonic())))
        stopper.start()
        down_shown = wui.wait(victim.n, ("down",), timeout=15)
        stopper.join()
        time.sleep(max(0.0, killed + 10 - time.monotonic()))
    result = loop.summary(since=killed, victim=victim.n)
    result["last_via_node_s"], result["still_taking_at_end"] = loop.last_start_via(victim.n, killed)
    result["page_down_after_s"] = down_shown
    result["stop_s"] = round(stopped[0] - killed, 3)
    victim.start()
    wui.wait(victim.n, ("up",), timeout=60)
    carried_by(victim.n, timeout=30)
    return result


def rolling_reboot(cluster, wui):
    """Each member in turn as the product drains it: Disable, Disabled, reboot, Enable, Up, carrying."""
    steps = {}
    with Loop(cap_s=ROLLING_CAP_S) as loop:
        time.sleep(1)
        started = time.monotonic()
        for n in NODES[1:]:  # the admin node holds the VS address: taking it down is failover's benchmark
            began = time.monotonic()
            wui.act(n, "disable")
            wui.wait(n, ("disabled",), timeout=DRAIN_TIME_S + 15)
            cluster.node(n).reboot()
            back_in_rotation(wui, n)
            steps[str(n)] = round(time.monotonic() - began, 3)
        ended = time.monotonic()
    if ended - started > ROLLING_CAP_S - 1:
        raise BenchError(f"the rolling reboot outlasted the client loop's cap of {ROLLING_CAP_S} s")
    return loop.summary(since=started) | {"seconds": round(ended - started, 3), "per_node_s": steps}


# --- the run -------------------------------------------------------------------------------------


def headline(name, figures):
    """The issue's summary of one scenario; recovered_s is from the fault to the last failed request (0: none)."""
    return {
        "name": name,
        "sent": figures["requests"],
        "failed": figures["failed"],
        "p99_ms": figures["p99_ms"],
        "in_flight_at_fault": figures.get("in_flight_at_fault"),
        "recovered_s": figures.get("last_failure_s", 0.0),
    }


def main():
    result = {"machine": machine()}
    result["bounds"] = {
        "wrk": {"threads": WRK_THREADS, "connections": WRK_CONNECTIONS, "seconds": WRK_SECONDS},
        "client_loop": {"threads": CLIENT_THREADS, "cap_s": LOOP_CAP_S, "rolling_cap_s": ROLLING_CAP_S},
        "node_warmup_s": WARMUP_S,
        "drain_time_s": DRAIN_TIME_S,
    }
    password = secrets.token_urlsafe(12)
    real_servers = RealServers(PREFIX, root=WORK / "real-servers")
    fast = responders()
    result["real_servers"] = {
        "throughput": {"kind": "HAProxy responders (http-request return)", "servers": RESPONDERS},
        "scenarios": {"kind": "tests/harness/real_servers.py", "servers": real_servers.servers},
    }
    result["scenarios"] = []
    cluster = build_cluster(password)
    failed = None
    try:
        real_servers.start()
        fast.start()
        # A responder with no proxy in front: were the figures below near it, the responders would be the bound.
        _, address, port = RESPONDERS[0]
        result["one_responder"] = wrk(address, port, {"responders": pids_of(fast.pidfile)})
        wui = setup_cluster(cluster, password, real_servers)
        throughput(cluster, wui, fast, result)
        for name, scenario in (
            ("drain", lambda: drain(wui)),
            ("kill", lambda: kill(cluster, wui)),
            ("rolling_reboot", lambda: rolling_reboot(cluster, wui)),
        ):
            result[name] = scenario()
            print(f"{name}: {json.dumps(result[name])}", flush=True)
            result["scenarios"].append(headline(name, result[name]))
    except (BenchError, HarnessError) as exc:
        failed = str(exc)
        result["error"] = failed
    finally:
        cluster.stop()
        fast.stop()
        real_servers.stop()
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    if failed:
        sys.exit(f"traffic: {failed}")


if __name__ == "__main__":
    main()

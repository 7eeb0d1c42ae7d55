"""Failure detection time: from killing a node's services to Cluster Control showing it Down.

A real local cluster on 127.0.12.x (the demo uses .10, the tests .11), set up as
`make demo` does: node 1 is the admin and runs the shared WUI and the Celery
worker whose beat checks every member once a second. We watch the page the
operator watches (the htmx fragment of Cluster Control), not the database.
"""

# ruff: noqa: E402 -- the project path and Django must be set up before the imports below

import http.cookiejar
import json
import random
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))  # run as a script: make the project importable

from tests.harness import Cluster, https_context

PREFIX = "127.0.12"
TRIES = 10
VICTIMS = (2, 3, 4)  # node 1 holds the control plane: killing it is another benchmark
POLL_S = 0.05
RESULT = BASE_DIR / "bench" / "results" / "detection.json"
ROW = re.compile(r'<tr data-node="(\d+)" data-status="([\w-]+)"')


def build_cluster(password):
    # The settings only allow the demo's and the tests' blocks by default; ours must be named.
    hosts = ",".join(f"{PREFIX}.{n}" for n in (1, 2, 3, 4, 90))
    env = {"FLOTILLA_ADMIN_PASSWORD": password, "ALLOWED_HOSTS": hosts}
    return Cluster(size=4, prefix=PREFIX, web=True, fresh=True, wui_env=env)


def create_cluster(cluster):
    """What `manage.py demo` does: node 1 creates the cluster, the others join and are enabled."""
    joins = [f"{node.address}={node.agent('offer-join')['code']}" for node in cluster.nodes[1:]]
    admin = cluster.node(1)
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "bootstrap_cluster"]
    argv += ["--shared-address", cluster.shared_address, "--enable"]
    argv += ["--virtual-service", "Bench web", cluster.shared_address, "80", "--join", *joins]
    subprocess.run(argv, env=admin.env("shared"), check=True, cwd=BASE_DIR)
    admin.restart()  # the admin unit comes back on the shared address with the worker


def login(base, password, ca_file):
    # No proxy handler: whatever the environment says, this traffic stays on loopback.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        urllib.request.HTTPCookieProcessor(jar),
        urllib.request.HTTPSHandler(context=https_context(ca_file)),  # the units' own certificates
    )
    form = opener.open(f"{base}/login/", timeout=5).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "admin", "password": password})
    request = urllib.request.Request(f"{base}/login/", data=data.encode(), headers={"Referer": f"{base}/login/"})
    with opener.open(request, timeout=5) as response:
        if response.url.endswith("/login/"):
            raise RuntimeError("login refused")
    return opener


class Page:
    """The live table of Cluster Control, as the browser's htmx poll fetches it."""

    def __init__(self, opener, base):
        self.opener, self.url, self.errors = opener, f"{base}/cluster-control/", 0

    def status(self, n):
        request = urllib.request.Request(self.url, headers={"HX-Request": "true"})
        try:
            with self.opener.open(request, timeout=5) as response:
                return dict(ROW.findall(response.read().decode())).get(str(n))
        except (urllib.error.URLError, TimeoutError):
            self.errors += 1  # counted and reported: a page that fails is a finding too
            return None

    def wait(self, n, wanted, timeout):
        """Poll every POLL_S until node n's status satisfies wanted; return the monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = time.monotonic()
            if wanted(self.status(n)):
                return time.monotonic()
            time.sleep(max(0.0, POLL_S - (time.monotonic() - started)))
        raise TimeoutError(f"node {n} did not reach the wanted status within {timeout} s")


def alive(status):
    return status in ("up", "starting")


def one_try(page, node):
    page.wait(node.n, alive, timeout=60)
    # Kill at a random phase of the 1 s health-check tick: recovery takes about the same time
    # every try, so without this the samples lock onto one phase and the median drifts run to run.
    time.sleep(random.uniform(0, 1))
    # Stop in a thread: polling runs from the moment the kill starts, however long stop() takes.
    stopped = []
    stopper = threading.Thread(target=lambda: (node.stop(), stopped.append(time.monotonic())))
    killed = time.monotonic()
    stopper.start()
    seen = page.wait(node.n, lambda s: s == "down", timeout=30)
    stopper.join()
    node.start()
    page.wait(node.n, lambda s: s is not None and s != "down", timeout=60)
    # stop() itself takes time (graceful SIGTERMs, then the session kill): reported beside.
    return seen - killed, stopped[0] - killed


def main():
    password = secrets.token_urlsafe(12)
    cluster = build_cluster(password)
    try:
        cluster.start()
        create_cluster(cluster)
        page = Page(login(cluster.shared_url, password, cluster.ca_file), cluster.shared_url)
        samples, stops = [], []
        for i in range(TRIES):
            node = cluster.node(VICTIMS[i % len(VICTIMS)])
            detected, stop = one_try(page, node)
            samples.append(detected)
            stops.append(stop)
            print(f"try {i + 1}: node {node.n} Down after {detected:.3f} s (stop() took {stop:.3f} s)", flush=True)
    finally:
        cluster.stop()
    result = {"tries": TRIES, "median_s": round(statistics.median(samples), 3), "max_s": round(max(samples), 3)}
    result |= {"min_s": round(min(samples), 3), "samples_s": [round(s, 3) for s in samples], "poll_errors": page.errors}
    result["stop_median_s"] = round(statistics.median(stops), 3)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

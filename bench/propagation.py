"""Configuration propagation: from the commit of a change to every node having applied it.

A real local cluster of sshd nodes on 127.0.12.x (the demo uses .10, the tests .11) with the
agent only (no node WUIs), a real Celery worker on Redis and a throwaway PostgreSQL database.
Each change is what Cluster Parameters > Set does: a new Cluster Virtual ID and
`config.change()`, one transaction; the product enqueues the push on commit. The
"applied" signal is each node's own `config.json`, which the agent replaces atomically.
"""

# ruff: noqa: E402 -- the project path and Django must be set up before the imports below

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))  # run as a script: make the project importable
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")
# As `make bench` sets them: the worker is another process, so it needs a real database and broker.
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flotilla")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

import django

django.setup()

from django.conf import settings
from django.db import connection, transaction

from cluster import ssh
from cluster.configuration import rules as config
from cluster.models import Cluster as ClusterRow
from cluster.models import Node
from tests.harness import Cluster
from wui.celery import app

PREFIX = "127.0.12"
SIZES = (4, 16)
CHANGES, WARMUP = 50, 3  # warm-up opens the SSH sessions and the broker connection
POLL_S = 0.001
TIMEOUT_S = 30
DB_NAME = "flotilla_bench_prop"  # not test_flotilla: a test suite may be running at the same time
RESULT = BASE_DIR / "bench" / "results" / "propagation.json"


def create_database():
    connection.settings_dict["TEST"]["NAME"] = DB_NAME  # keep the other TEST defaults (CHARSET...)
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    return old_name


def start_worker(queue):
    """A real worker on its own queue (a worker of another run cannot take our tasks)."""
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    env = {**os.environ, "DATABASE_URL": url, "CELERY_QUEUE": queue}
    name = f"{queue}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "wui", "worker", "-P", "threads", "-c", "8", "-l", "warning"]
    argv += ["-Q", queue, "-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.conf.task_default_queue = queue  # where the commit's push_config.delay() goes
    log = open(settings.VAR_DIR / "bench-propagation-worker.log", "wb")  # noqa: SIM115 (the child owns it)
    worker = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not app.control.ping(destination=[name], timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start; see {log.name}")
    return worker


def register(cluster):
    """The rows a created cluster has: node 1 the admin, every node pinned by its host key."""
    Node.objects.all().delete()
    defaults = {"mode": ClusterRow.Mode.CLUSTERING, "shared_address": f"{PREFIX}.90", "virtual_id": 1}
    ClusterRow.objects.update_or_create(pk=1, defaults=defaults)
    rows = [
        Node(number=n.n, address=n.address, ssh_user=n.user, host_key=n.host_key_line, is_admin=n.n == 1, enabled=True)
        for n in cluster.nodes
    ]
    Node.objects.bulk_create(rows)


def change(i):
    """Cluster Parameters > Set (as membership.set_parameter); returns (generation, commit time)."""
    committed = []
    with transaction.atomic():
        # Registered before the commit's own hook: on_commit hooks run in order, so this
        # stamps the instant the database committed, and the push's enqueue counts in the result.
        transaction.on_commit(lambda: committed.append(time.perf_counter()))
        with config.change() as done:
            done.cluster.virtual_id = i % 255 + 1
            done.cluster.save(update_fields=["virtual_id"])
        number = done.generation.number
    return number, committed[0]


def wait_applied(paths, number, started):
    """Per-node seconds from the commit until its config.json holds `number` (polled every 1 ms)."""
    # stat() first and parse only a replaced file (the agent's os.replace gives a new inode):
    # parsing 16 files every 1 ms would take a share of the 2 cores the worker and the agents
    # need. The first pass parses every file, so an apply that beat us here is not missed.
    inodes, seen = dict.fromkeys(paths, -1), {}
    while len(seen) < len(paths):
        for path in set(paths) - seen.keys():
            inode = path.stat().st_ino if path.exists() else None
            if inode != inodes[path]:
                inodes[path] = inode
                if inode and json.loads(path.read_bytes())["generation"] >= number:
                    seen[path] = time.perf_counter() - started
        if time.perf_counter() - started > TIMEOUT_S:
            raise TimeoutError(f"generation {number} not applied on every node within {TIMEOUT_S} s")
        time.sleep(POLL_S)
    return seen


def settle(number):
    """Start each change from rest: the worker has recorded the previous one on every row."""
    deadline = time.monotonic() + TIMEOUT_S
    while Node.objects.filter(applied_generation__lt=number).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the worker did not record generation {number} on every node")
        time.sleep(0.01)


def measure(cluster):
    register(cluster)
    paths = [node.home / "config.json" for node in cluster.nodes]
    totals, firsts = [], []
    for i in range(WARMUP + CHANGES):
        number, started = change(i + 1)
        seen = wait_applied(paths, number, started)
        settle(number)
        if i >= WARMUP:
            totals.append(max(seen.values()) * 1000)
            firsts.append(min(seen.values()) * 1000)
    p = statistics.quantiles(totals, n=100, method="inclusive")
    run = {"nodes": len(cluster.nodes), "changes": CHANGES, "p50_ms": round(statistics.median(totals), 1)}
    run |= {"p99_ms": round(p[98], 1), "max_ms": round(max(totals), 1)}
    run["first_node_p50_ms"] = round(statistics.median(firsts), 1)  # pickup, before the fan-out
    print(json.dumps(run), flush=True)
    return run


def main():
    old_name = create_database()
    worker, runs = None, []
    try:
        worker = start_worker(f"flotilla-bench-{uuid.uuid4().hex[:8]}")
        for size in SIZES:
            cluster = Cluster(
                size=size, prefix=PREFIX, web=False, fresh=True, authorized_keys=[ssh.cluster_public_key()]
            )
            try:
                cluster.start()
                runs.append(measure(cluster))
            finally:
                cluster.stop()
    finally:
        if worker is not None:
            worker.terminate()  # warm shutdown: lets a running push finish
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        connection.creation.destroy_test_db(old_name, verbosity=0)  # after the worker let go of it
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()

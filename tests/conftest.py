"""Fixtures over real components: PostgreSQL, Redis, a Celery worker, sshd nodes, Chromium."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from cluster import ssh
from cluster.models import Node
from nodes.harness import BASE_DIR, Cluster
from wui.celery import app

TEST_PREFIX = "127.0.11"  # the demo uses 127.0.10: both can run at once
ADMIN_PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session")
def harness():
    """Four real nodes (sshd + node-local WUI), the cluster's key authorised on each."""
    cluster = Cluster(
        size=4,
        prefix=TEST_PREFIX,
        web=True,
        fresh=True,
        authorized_keys=[ssh.cluster_public_key()],
        # The units' own processes count the warm-up in 3 s, not 30, so that a browser sees Up
        # quickly; the 30 s rule itself is tested with an injected clock.
        wui_env={"FLOTILLA_ADMIN_PASSWORD": ADMIN_PASSWORD, "NODE_WARMUP_SECONDS": "3"},
    )
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def units(harness):
    """The four units, reset to fresh standalone machines before the test."""
    harness.factory_reset()
    ssh.get_pool().close_all()
    yield harness
    ssh.get_pool().close_all()


@pytest.fixture
def pool():
    """A fresh pool per test, so that one test's open sessions never leak into another."""
    p = ssh.Pool(ssh.load_or_create_key(settings.CLUSTER_SSH_KEY), connect_timeout=2, command_timeout=5)
    yield p
    p.close_all()


@pytest.fixture
def member_rows(harness, db):
    """The harness nodes as Node rows with their host keys pinned."""
    return [
        Node.objects.create(number=n.n, address=n.address, ssh_user=n.user, host_key=n.host_key_line)
        for n in harness.nodes
    ]


class Worker:
    """A real Celery worker process on the real broker; it can be killed and started again."""

    def __init__(self, argv, env, log_path, name):
        self.argv, self.env, self.log_path, self.name = argv, env, log_path, name
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        _wait_for_worker(self.proc, self.log_path, self.name)

    def kill(self):
        """As a crash would: no warm shutdown, the task in hand is lost."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker on the real broker, writing to the test database."""
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    # Between transactional tests the test database is flushed (TRUNCATE) while the worker's
    # health round may hold row locks: with a shorter deadlock timeout the worker's round is the
    # one PostgreSQL aborts, never the flush.
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + db_name + "?options=-c%20deadlock_timeout%3D100ms"
    queue = f"flotilla-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": url, "CELERY_QUEUE": queue}
    log_path = settings.VAR_DIR / "worker.log"
    log_path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "celery", "-A", "wui", "worker", "-P", "threads", "-c", "4", "-l", "warning"]
    # A queue of this session's own: a worker left over from another run cannot take our tasks.
    app.conf.task_default_queue = queue
    # -B: the health checks run as in production, once a second.
    argv += ["-B"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue, "-n", f"{queue}@localhost"]
    worker = Worker(argv, env, log_path, f"{queue}@localhost")
    worker.start()
    yield worker
    if worker.proc.poll() is None:
        worker.stop()


def _wait_for_worker(proc, log_path, name):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited: {log_path.read_text()[-2000:]}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError("celery worker did not answer a ping within 30 s")


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("admin", password=ADMIN_PASSWORD)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def wait_until(predicate, timeout=10.0, interval=0.05, message=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s" + (f": {message()}" if message else ""))


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }

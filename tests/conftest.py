"""Fixtures over real components: PostgreSQL, Redis, a Celery worker, sshd nodes, Chromium."""

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from cluster import ssh
from cluster.models import Node
from nodes.harness import BASE_DIR, ROOT, Cluster
from wui.celery import app, scheduler_lock_path

# The demo uses 127.0.10 and the benches 127.0.12: all can run at once (two suites too, on two prefixes).
TEST_PREFIX = os.environ.get("FLOTILLA_TEST_PREFIX", "127.0.11")
ADMIN_PASSWORD = "correct-horse-battery"

# Every process this session starts inherits the mark, so that the end of the session can tell
# whether one was left running.
SESSION_MARK = "FLOTILLA_TEST_SESSION"
os.environ[SESSION_MARK] = uuid.uuid4().hex
_session_queues = []
_started = {"harness": False}


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
    _started["harness"] = True
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
    """A real Celery worker process on the real broker; it can be killed and started again.

    It runs in a process group of its own (with its scheduler, when started with -B), and never
    leaves a process of that group behind when it is killed or stopped.
    """

    def __init__(self, argv, env, log_path, name):
        self.argv, self.env, self.log_path, self.name = argv, env, log_path, name
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_for_worker(self.proc, self.log_path, self.name)
        except BaseException:
            self.kill()
            raise

    def kill(self):
        """As a crash would: no warm shutdown, the task in hand is lost; its scheduler dies with it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._nothing_left("killed")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._nothing_left("stopped")

    def _nothing_left(self, how):
        """The worker's own processes end with it (the product's promise); never let one run on."""
        group = self.proc.pid
        deadline = time.monotonic() + 10
        while (left := group_members(group)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            kill_group(group)
            raise AssertionError(f"the worker was {how} but its processes ran on: {describe(left)}")


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
    _session_queues.append(queue)
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
    worker.stop()
    scheduler_lock_path(queue).unlink(missing_ok=True)  # nobody holds it any more: one file per session


def _wait_for_worker(proc, log_path, name):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited: {log_path.read_text()[-2000:]}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError("celery worker did not answer a ping within 30 s")


# --- processes -----------------------------------------------------------------------------


def proc_stat(pid):
    """(state, ppid, process group, start time in clock ticks) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def alive(pid):
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in "ZX"


def running_pids():
    for entry in os.listdir("/proc"):
        if entry.isdigit() and alive(int(entry)):
            yield int(entry)


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def describe(pids):
    return "; ".join(f"{pid}: {cmdline(pid)}" for pid in pids)


def children_of(pid):
    return [p for p in running_pids() if (stat := proc_stat(p)) and stat[1] == pid]


def group_members(group):
    return [p for p in running_pids() if (stat := proc_stat(p)) and stat[2] == group]


def kill_group(group):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def left_by_this_session():
    """Processes this session started that still run: they carry its mark, or belong to its nodes."""
    me = os.getpid()
    since = proc_stat(me)[3]
    ancestors, pid = set(), me
    while (stat := proc_stat(pid)) and stat[1] > 0:
        pid = stat[1]
        ancestors.add(pid)
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}".encode()
    patterns, node_users = list(_session_queues), set()
    if _started["harness"]:
        # The nodes' sessions run under the nodes' users, with sshd's environment, not ours.
        block = TEST_PREFIX.split(".")[2]
        patterns += [f"{ROOT / TEST_PREFIX}/", f"{TEST_PREFIX}.", f"flotilla-{block}-"]
        node_users = {u.pw_uid for u in pwd.getpwall() if u.pw_name.startswith(f"flotilla-{block}-")}
    left = []
    for pid in running_pids():
        stat = proc_stat(pid)
        if pid == me or pid in ancestors or stat is None or stat[3] < since:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if mark in environ or uid in node_users or any(p in cmdline(pid) for p in patterns):
            left.append(pid)
    return left


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """`make test` leaves no process running: anything this session started and left fails it."""
    deadline = time.monotonic() + 5  # time for processes already told to stop to finish
    while (left := left_by_this_session()) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not left:
        return
    report = describe(left)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(
            f"Processes started by this test session were still running (now killed): {report}", red=True
        )
    else:
        print(f"Processes started by this test session were still running (now killed): {report}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


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

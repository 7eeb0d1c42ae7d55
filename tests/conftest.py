"""Fixtures over real components: PostgreSQL, Redis, a Celery worker, sshd nodes, Chromium."""

import contextlib
import os
import pwd
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from cluster import ssh
from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.models import Node, RealServer
from tests.harness import ROOT, Cluster
from tests.harness.real_servers import RealServers
from tests.helpers import (
    ADMIN_PASSWORD,
    SHARED,
    TEST_PREFIX,
    Worker,
    add_all_enabled,
    all_up,
    cmdline,
    describe,
    proc_stat,
    running_pids,
    unit_state,
    wait_applied,
    wait_until,
    with_virtual_service,
)
from wui.celery import app, scheduler_lock_path

# Fixtures that start real nodes: a test using one (directly or through another fixture) is
# marked `nodes`, so that `make test-fast` (-m "not nodes") runs the others alone.
NODE_FIXTURES = {"harness"}


# Every process this session starts inherits the mark, so that the end of the session can tell
# whether one was left running.
SESSION_MARK = "FLOTILLA_TEST_SESSION"
os.environ[SESSION_MARK] = uuid.uuid4().hex
_session_queues = []
_started = {"harness": False}

# The control plane's clock (cluster/clock.py) for this process and the worker: tests move it with
# tests.helpers.advance(); every test starts with it where the real one is.
CLOCK_FILE = settings.VAR_DIR / "test-clock-offset"
settings.CLOCK_OFFSET_FILE = str(CLOCK_FILE)
CLOCK_FILE.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def real_time():
    """No test inherits another's clock: the offset is removed before and after each one."""
    CLOCK_FILE.unlink(missing_ok=True)
    yield
    CLOCK_FILE.unlink(missing_ok=True)


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
    _harnesses.append(cluster)
    cluster.start()
    yield cluster
    cluster.stop()


_harnesses = []


def pytest_terminal_summary(terminalreporter):
    for cluster in _harnesses:
        reset, kept = sum(n.resets for n in cluster.nodes), sum(n.kept for n in cluster.nodes)
        terminalreporter.write_line(f"harness: {reset} unit resets, {kept} units found fresh and kept as they were")


@pytest.fixture
def units(harness):
    """The four units, reset to fresh standalone machines before the test.

    A unit the tests left exactly as its last reset did (files, daemons, no session, no reboot
    pending) is fresh already and is not reset again: a reset costs a restart of its daemons.
    """
    harness.factory_reset(only_if_changed=True)
    ssh.get_pool().close_all()
    yield harness
    ssh.get_pool().close_all()


@pytest.fixture
def cluster_on_node1(units, transactional_db, celery_worker):
    """A cluster in the test database whose admin is unit 1, as Create New Cluster leaves it."""
    unit = units.node(1)
    unit.agent("membership", "admin", SHARED)
    membership.create_cluster(SHARED, unit.agent("facts"), unit.address)
    return units


def pytest_collection_modifyitems(config, items):
    """Mark every test that starts real nodes (`harness` is in its fixture closure) with `nodes`."""
    for item in items:
        if NODE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.nodes)


@pytest.fixture
def four(cluster_on_node1, admin_client):
    """Node 1 the admin, nodes 2-4 enabled and Up, one Virtual Service."""
    units = cluster_on_node1
    with_virtual_service()
    add_all_enabled(admin_client, [units.node(n) for n in (2, 3, 4)])
    for n in (2, 3, 4):
        wait_until(lambda n=n: unit_state(units.node(n), "traffic.json").get("accepting") is True, 15)
    all_up()
    # A software update starts only on a cluster in sync: the last Enable's generation has reached every node.
    wait_applied()
    return units


@pytest.fixture(scope="session")
def real_servers(harness):
    """Three real-server HTTP processes on PREFIX.201-203:8080, each answering with its name and
    the address that connected (the node that carried the request)."""
    servers = RealServers(TEST_PREFIX, root=harness.root / "real-servers")
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture
def serving(four, real_servers):
    """``four`` with the real servers behind its Virtual Service, applied on every node."""
    with config.change():
        service = with_virtual_service()
        for _, address, port in real_servers.servers:
            RealServer.objects.get_or_create(virtual_service=service, address=address, port=port)
    wait_applied()
    return four


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
    env = {**os.environ, "DATABASE_URL": url, "CELERY_QUEUE": queue, "FLOTILLA_CLOCK_OFFSET_FILE": str(CLOCK_FILE)}
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


# --- processes -----------------------------------------------------------------------------


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


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    """The units' WUIs serve certificates each unit made itself (and makes again at every factory
    reset). Chromium takes trust only from its NSS database in the home directory (shared by every
    test run on the machine) or from flags fixed when the browser starts, so the test browser accepts
    them; the tests that check the certificates themselves verify them against the harness's
    ``ca_file`` (tests/foundation/test_https.py)."""
    return {**browser_context_args, "ignore_https_errors": True}

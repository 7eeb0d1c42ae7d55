import ctypes
import fcntl
import logging
import os
import re
import signal
import sys
import threading
import time

from celery import Celery, signals

import wui.broker  # noqa: F401  (registers the embedded file broker)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")

app = Celery("wui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger("flotilla.worker")


@signals.task_prerun.connect
def _fresh_content_types(**kwargs):
    # Content type ids can change under a long-running worker (a migrate, a flushed
    # test database); a stale cached id makes every audited write fail.
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


# --- one scheduler, bound to its worker ----------------------------------------------------

_worker_pid = None  # set in the worker; a scheduler forked from it (celery worker -B) inherits it
_scheduler_lock = None  # the open lock file: closing it would let a second scheduler in


@signals.worker_init.connect
def _remember_the_worker(**kwargs):
    global _worker_pid
    _worker_pid = os.getpid()


@signals.beat_init.connect
def _one_scheduler(**kwargs):
    """Beat starts here, before it sends anything: it dies with its worker, and never runs twice."""
    try:
        if _worker_pid is not None and os.getpid() != _worker_pid:
            _die_with(_worker_pid)
        _hold_scheduler_lock()
    except Exception:
        # Celery would log this and start beat all the same: better no scheduler than a second one.
        log.exception("Scheduler %d cannot make sure that it runs alone: it stops", os.getpid())
        logging.shutdown()
        os._exit(1)


def _die_with(parent):
    # An orphaned scheduler would go on queueing health rounds that nobody reads, and a restarted
    # worker would start a second one next to it.
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("Scheduler: cannot ask to die with the worker (errno %d)", ctypes.get_errno())
    # The worker may already be gone (then no signal comes), and the kernel signals when the parent
    # *thread* ends, not the process: the watchdog covers both.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="scheduler-watchdog").start()


def _watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.2)
    log.warning("Scheduler: its worker (pid %d) is gone; it stops too", parent)
    os._exit(1)


def scheduler_lock_path(queue=None):
    """One lock per control plane (its state directory) and queue: only one scheduler feeds a queue."""
    from django.conf import settings

    queue = re.sub(r"[^\w.-]", "_", queue or app.conf.task_default_queue)
    return settings.VAR_DIR / f"scheduler-{queue}.lock"


def _hold_scheduler_lock():
    global _scheduler_lock
    path = scheduler_lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        log.warning("Scheduler %d waits: the scheduler of pid %s runs (lock %s)", os.getpid(), holder, path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        log.warning("Scheduler %d runs: the one before it stopped", os.getpid())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _scheduler_lock = fd


# --- hard time limits under the thread pool ------------------------------------------------
#
# Celery's thread pool ignores task time limits, and a thread cannot be stopped from outside. So a
# task past its hard limit is failed and acknowledged as Celery does, and the worker process exits,
# as Celery's prefork pool replaces the child that ran it: its supervisor starts a fresh worker, and
# every task that runs is bounded by its limit, which the broker's visibility timeout relies on.
# No soft limits: an exception raised into a task's thread half way through an exchange on a shared
# agent session would leave that session out of step for the next caller.

_watching = threading.Lock()


@signals.worker_ready.connect
def _enforce_time_limits(sender=None, **kwargs):
    from celery.concurrency.thread import TaskPool

    # Started after the scheduler was forked: forking a process that runs threads is unsafe.
    if isinstance(getattr(sender, "pool", None), TaskPool) and _watching.acquire(blocking=False):
        threading.Thread(target=_watch_time_limits, daemon=True, name="time-limits").start()


def _watch_time_limits():
    from celery.worker import state

    started = {}  # request id -> when this watch first saw it running (monotonic: no clock steps)
    while True:
        time.sleep(1)
        try:
            running = list(state.active_requests)
        except RuntimeError:  # the set changed while being copied: look again next time
            continue
        now = time.monotonic()
        started = {req.id: started.get(req.id, now) for req in running}
        for req in running:
            limit = (req.time_limits[0] if req.time_limits else None) or req.task.time_limit
            limit = limit or app.conf.task_time_limit
            if limit and now - started[req.id] > limit:
                _hard_time_limit(req, limit)


def _hard_time_limit(req, limit):
    try:
        req.on_timeout(soft=False, timeout=limit)  # logs it, fails the task, acknowledges its message
        # The worker's event loop sends the acknowledgement: let it, so the task is not handed out again.
        deadline = time.monotonic() + 5
        while not req.message.acknowledged and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        log.error("Worker %d exits: %s[%s] is still running past its time limit", os.getpid(), req.name, req.id)
        logging.shutdown()
        os._exit(1)

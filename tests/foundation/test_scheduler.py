"""One scheduler, always: it dies with its worker, a second one waits, and a test session leaves nothing running."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.harness import BASE_DIR
from tests.helpers import Worker, alive, children_of, cmdline, proc_stat, wait_until
from wui.celery import scheduler_lock_path

PROBE = "FLOTILLA_LEAK_PROBE"
_strays = []


@pytest.fixture
def broker():
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("reads the queue in Redis")
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    client.close()


@pytest.fixture
def schedulers(celery_worker, broker, tmp_path):
    """Workers with their schedulers (-B) on a queue of this test's own that no worker reads.

    The health rounds the schedulers queue are never run (each worker reads another queue): they
    only say which process sent them.
    """
    queue = f"flotilla-beat-{uuid.uuid4().hex[:8]}"
    started = []

    def start(n):
        name = f"{queue}-{n}@localhost"
        argv = [sys.executable, "-m", "celery", "-A", "wui", "worker", "-B", "-P", "threads", "-c", "1"]
        argv += ["-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        argv += ["-Q", f"{queue}.idle", "-n", name]
        worker = Worker(argv, {**celery_worker.env, "CELERY_QUEUE": queue}, tmp_path / f"worker{n}.log", name)
        started.append(worker)
        worker.start()
        return worker

    start.queue = queue
    yield start
    try:
        for worker in started:
            worker.stop()
    finally:
        broker.delete(queue, f"{queue}.idle", f"_kombu.binding.{queue}", f"_kombu.binding.{queue}.idle")
        scheduler_lock_path(queue).unlink(missing_ok=True)


def senders(broker, queue):
    """The process ids that queued the health rounds waiting in the queue."""
    rounds = [json.loads(m) for m in broker.lrange(queue, 0, -1)]
    return {int(m["headers"]["origin"].split("@")[0].removeprefix("gen")) for m in rounds}


def rounds_from(broker, queue, count=3):
    """Wait for `count` new health rounds; returns who sent them."""
    broker.delete(queue)
    wait_until(lambda: broker.llen(queue) >= count, 15)
    return senders(broker, queue)


def test_a_killed_worker_takes_its_scheduler_with_it(schedulers, broker):
    worker = schedulers(1)
    beat = wait_until(lambda: next(iter(senders(broker, schedulers.queue)), None), 30)
    assert proc_stat(beat)[1] == worker.proc.pid, "the scheduler runs inside the worker"

    os.kill(worker.proc.pid, signal.SIGKILL)  # a crash: no warm shutdown stops the scheduler
    worker.proc.wait(timeout=30)

    wait_until(lambda: not alive(beat), 10, message=lambda: f"scheduler {beat} outlived its worker: {cmdline(beat)}")
    broker.delete(schedulers.queue)
    assert broker.llen(schedulers.queue) == 0


def test_a_second_scheduler_waits_while_one_runs_and_takes_over_when_it_dies(schedulers, broker):
    queue = schedulers.queue
    first = schedulers(1)
    runner = wait_until(lambda: next(iter(senders(broker, queue)), None), 30)

    second = schedulers(2)
    wait_until(lambda: "waits: the scheduler of pid" in second.log_path.read_text(), 30)
    waiter = wait_until(lambda: children_of(second.proc.pid), 10)[0]  # its scheduler, waiting
    assert alive(waiter) and waiter != runner
    assert rounds_from(broker, queue) == {runner}, "only one scheduler sends health rounds"
    lock = scheduler_lock_path(queue)
    assert lock.read_text().strip() == str(runner)
    with open(lock) as f, pytest.raises(BlockingIOError):
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)

    first.kill()
    wait_until(lambda: "runs: the one before it stopped" in second.log_path.read_text(), 10)
    assert rounds_from(broker, queue) == {waiter}
    assert lock.read_text().strip() == str(waiter)


def leak_probe():
    """Run only by the test below, as a session of its own (the name is not collected otherwise)."""
    stray = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    _strays.append(stray)  # left running on purpose, past the end of the test
    Path(os.environ[PROBE]).write_text(str(stray.pid))


def test_a_session_that_leaves_a_process_running_fails_and_names_it(tmp_path):
    pidfile = tmp_path / "stray.pid"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "python_functions=leak_probe"]
    argv += [__file__]
    result = subprocess.run(
        argv, cwd=BASE_DIR, env={**os.environ, PROBE: str(pidfile)}, capture_output=True, text=True, timeout=120
    )
    stray = int(pidfile.read_text())
    try:
        assert "1 passed" in result.stdout, result.stdout + result.stderr
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
        assert "Processes started by this test session were still running" in result.stdout
        assert f"{stray}: {sys.executable} -c import signal; signal.pause()" in result.stdout
        wait_until(lambda: not alive(stray), 10)
    finally:
        if alive(stray):
            os.kill(stray, signal.SIGKILL)

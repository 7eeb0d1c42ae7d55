"""A real Celery worker on the real broker does the node work."""

import socket
import sys
import uuid

import pytest
import redis
from django.conf import settings

from cluster.models import Node
from cluster.tasks import sync_node
from tests.helpers import Worker, wait_until


@pytest.mark.django_db(transaction=True)
def test_the_worker_tells_a_node_over_ssh_and_records_its_answer(harness, celery_worker, member_rows):
    node = member_rows[1]
    # Enabled in the database, not yet on the node: the worker tells the node, and records what it answers.
    Node.objects.filter(pk=node.pk).update(enabled=True, accepting=False)
    sync_node.delay(node.pk)
    row = wait_until(lambda: Node.objects.filter(pk=node.pk, accepting=True).first())
    assert harness.node(2).agent("status")["accepting"] is True
    assert row.last_error == ""


@pytest.mark.django_db(transaction=True)
def test_a_node_with_a_wrong_pinned_key_is_recorded_as_refused(harness, celery_worker, member_rows):
    node = member_rows[2]
    Node.objects.filter(pk=node.pk).update(host_key=harness.node(1).host_key_line)
    Node.objects.filter(pk=node.pk).update(accepting=False)
    sync_node.delay(node.pk)
    row = wait_until(lambda: Node.objects.filter(pk=node.pk).exclude(last_error="").first())
    assert "node 3" in row.last_error and "host key mismatch" in row.last_error
    assert row.accepting is False


@pytest.mark.django_db(transaction=True)
def test_a_task_past_its_time_limit_fails_and_its_worker_makes_way_for_a_fresh_one(celery_worker, tmp_path):
    """The thread pool cannot stop a thread: the worker exits, as Celery's prefork replaces a child."""
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("reads the broker's unacknowledged messages in Redis")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = f"flotilla-limit-{uuid.uuid4().hex[:8]}"
    name = f"{queue}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "wui", "worker", "-P", "threads", "-c", "2", "-l", "warning"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", queue, "-n", name]
    # The task waits on a node that takes the connection and never says a word.
    env = {**celery_worker.env, "CELERY_QUEUE": queue, "SSH_CONNECT_TIMEOUT": "60"}
    worker = Worker(argv, env, tmp_path / "worker.log", name)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        node = Node.objects.create(
            number=9, address="127.0.0.1", ssh_port=silent.getsockname()[1], ssh_user="nobody", host_key="ssh-ed25519 A"
        )
        worker.start()
        try:
            task = sync_node.apply_async((node.pk,), queue=queue, time_limit=1)
            wait_until(lambda: worker.proc.poll() is not None, 30, message=lambda: worker.log_path.read_text())
        finally:
            worker.kill()
    log = worker.log_path.read_text()
    assert f"Hard time limit (1s) exceeded for cluster.tasks.sync_node[{task.id}]" in log
    # Failed and acknowledged, as Celery does at a hard limit: it is not handed out again.
    assert not [m for m in broker.hvals("unacked") if task.id.encode() in m]
    assert broker.llen(queue) == 0
    broker.delete(queue, f"_kombu.binding.{queue}")
    broker.close()

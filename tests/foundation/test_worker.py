"""A real Celery worker on the real broker does the node work."""

import pytest

from cluster.models import Node
from cluster.tasks import refresh_facts
from tests.conftest import wait_until


@pytest.mark.django_db(transaction=True)
def test_the_worker_collects_a_nodes_facts_over_ssh(harness, celery_worker, member_rows):
    node = member_rows[1]
    refresh_facts.delay(node.pk)
    row = wait_until(lambda: Node.objects.filter(pk=node.pk, version__gt="").first())
    assert row.facts["hostname"] == "lb2"
    assert row.last_error == ""


@pytest.mark.django_db(transaction=True)
def test_a_node_with_a_wrong_pinned_key_is_recorded_as_refused(harness, celery_worker, member_rows):
    node = member_rows[2]
    Node.objects.filter(pk=node.pk).update(host_key=harness.node(1).host_key_line)
    refresh_facts.delay(node.pk)
    row = wait_until(lambda: Node.objects.filter(pk=node.pk).exclude(last_error="").first())
    assert "node 3" in row.last_error and "host key mismatch" in row.last_error
    assert row.facts == {}

"""Workflows that touch nodes. The database row is the truth; SSH only acts."""

from django.utils import timezone

from cluster import ssh
from cluster.models import Node


def refresh_facts(node_id):
    """Ask a node for its facts and record them (or the error) on its row."""
    node = Node.objects.get(pk=node_id)
    try:
        facts = ssh.get_pool().run(node.target, "facts")
    except ssh.NodeError as exc:
        Node.objects.filter(pk=node_id).update(last_error=str(exc))
        return
    Node.objects.filter(pk=node_id).update(
        facts=facts, version=facts.get("version", ""), last_error="", last_ok_at=timezone.now()
    )

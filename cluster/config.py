"""The cluster configuration as one canonical document, its generations and its push."""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from django.db import transaction
from django.db.models import Max

from cluster import events, ssh
from cluster.models import Cluster, ConfigGeneration, Node, VirtualService


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def render():
    from cluster.network import network_document  # network commits generations through this module

    cluster = Cluster.get()
    return {
        "schema": 1,
        "cluster": {
            "shared_address": cluster.shared_address,
            "virtual_id": cluster.virtual_id,
            "drain_time": cluster.drain_time,
        },
        "nodes": [{"id": n.number, "address": n.address, "enabled": n.enabled} for n in Node.objects.all()],
        "network": network_document(),
        "virtual_services": [
            vs.as_config()
            for vs in sorted(VirtualService.objects.prefetch_related("real_servers"), key=VirtualService.sort_key)
        ],
    }


def commit_generation(user=None):
    """Record the current configuration as a new generation and push it once committed."""
    document = render()
    digest = hashlib.sha256(canonical(document)).hexdigest()
    latest = ConfigGeneration.objects.order_by("-number").first()
    if latest and latest.sha256 == digest:
        return latest
    number = (ConfigGeneration.objects.aggregate(m=Max("number"))["m"] or 0) + 1
    generation = ConfigGeneration.objects.create(
        number=number, sha256=digest, document=document, created_by=user if user and user.is_authenticated else None
    )
    from cluster.tasks import push_config

    transaction.on_commit(lambda: push_config.delay())
    return generation


def envelope(generation):
    return json.dumps({"generation": generation.number, "sha256": generation.sha256, "config": generation.document})


def push(nodes=None, force=False):
    """Send the newest generation to every node behind it, in parallel; record what each applied.

    ``force`` sends it whatever the node last reported (Resync): the node itself
    replaces a damaged local copy.
    """
    generation = ConfigGeneration.objects.order_by("-number").first()
    if generation is None:
        return {}
    nodes = [
        n for n in (nodes or Node.objects.filter(removing=False)) if force or n.applied_generation < generation.number
    ]
    waiting = [n for n in nodes if not understands(n, generation.document)]
    for node in waiting:
        record_outcome(node, generation, waiting_for_update(node, generation.document))
    nodes = [n for n in nodes if n not in waiting]
    text = envelope(generation)
    from cluster.network import update_addresses

    # Pushes go over the interface marked "Use for Cluster Updates"; looked up here, not in the threads.
    targets = {n.pk: replace(n.target, address=update_addresses(n)[0]) for n in nodes}
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = dict(zip(nodes, pool.map(lambda n: _apply(targets[n.pk], text), nodes), strict=True))
    for node, error in results.items():
        record_outcome(node, generation, error)
    return results


WAITING = "waiting for the software update"


def understands(node, document):
    """Whether the node's software can apply this document; a node that has not said yet is asked."""
    return not node.schemas or document.get("schema") in node.schemas


def waiting_for_update(node, document):
    return (
        f"{WAITING}: version {node.version or '?'} understands configuration schema "
        f"{', '.join(map(str, node.schemas))}, the newest configuration needs schema {document.get('schema')}"
    )


def record_outcome(node, generation, error):
    """What the operator sees per node: the generation applied, or which step failed and why."""
    if error is None:
        Node.objects.filter(pk=node.pk, applied_generation__lt=generation.number).update(
            applied_generation=generation.number
        )
        Node.objects.filter(pk=node.pk).exclude(config_error="").update(config_error="")
        return
    message = f"apply generation {generation.number}: {error}"
    if Node.objects.filter(pk=node.pk).exclude(config_error=message).update(config_error=message):
        events.warning(
            f"Node {node.number} did not apply configuration generation {generation.number}: {error}", node=node
        )


def _apply(target, text):
    try:
        ssh.get_pool().call(target, "apply-config", text)
    except ssh.CommandFailed as exc:
        return f"the node refused it: {exc.detail.removeprefix('apply-config: ')}"
    except ssh.NodeError as exc:
        return f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason
    return None

"""The cluster configuration as one canonical document, its generations and its push."""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction
from django.db.models import Max

from cluster import ssh
from cluster.models import Cluster, ConfigGeneration, Node, VirtualService


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def render():
    cluster = Cluster.get()
    return {
        "schema": 1,
        "cluster": {
            "shared_address": cluster.shared_address,
            "virtual_id": cluster.virtual_id,
            "drain_time": cluster.drain_time,
        },
        "nodes": [{"id": n.number, "address": n.address, "enabled": n.enabled} for n in Node.objects.all()],
        "virtual_services": [
            {"name": vs.name, "address": vs.address, "port": vs.port}
            for vs in VirtualService.objects.order_by("address", "port")
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


def push(nodes=None):
    """Send the newest generation to every node behind it, in parallel; record what each applied."""
    generation = ConfigGeneration.objects.order_by("-number").first()
    if generation is None:
        return {}
    nodes = [n for n in (nodes or Node.objects.all()) if n.applied_generation < generation.number]
    text = envelope(generation)
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = dict(zip(nodes, pool.map(lambda n: _apply(n, text), nodes), strict=True))
    for node, error in results.items():
        if error is None:
            Node.objects.filter(pk=node.pk, applied_generation__lt=generation.number).update(
                applied_generation=generation.number
            )
    return results


def _apply(node, text):
    try:
        ssh.get_pool().call(node.target, "apply-config", text)
    except ssh.NodeError as exc:
        return str(exc)
    return None

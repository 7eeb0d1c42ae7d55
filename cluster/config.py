"""The cluster configuration as one canonical document, its generations and its push."""

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from cluster import events, ssh
from cluster.models import Cluster, ConfigGeneration, Node, VirtualService
from nodes.agent.formats import canonical


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


@contextmanager
def change(user=None):
    """The one write path for anything the configuration document says.

    The cluster row is locked first, then the caller changes what it changes, and the new
    generation is rendered inside the same transaction: two writers at once are serialised, and
    each generation is rendered from everything committed before it (a lost update would leave
    the nodes running a configuration that differs from the database). Yields the locked cluster.
    """
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get_or_create(pk=1)[0]
        done = Change(cluster)
        yield done
        done.generation = _commit_generation(user)


class Change:
    """What a ``change()`` block locked, and (once it ends) the generation it committed."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.generation = None


def latest():
    """The newest generation, or None."""
    return ConfigGeneration.objects.order_by("-number").first()


def latest_number():
    return ConfigGeneration.objects.order_by("-number").values_list("number", flat=True).first() or 0


def _commit_generation(user=None):
    document = render()
    digest = hashlib.sha256(canonical(document)).hexdigest()
    newest = latest()
    if newest and newest.sha256 == digest:
        return newest
    number = (ConfigGeneration.objects.aggregate(m=Max("number"))["m"] or 0) + 1
    generation = ConfigGeneration.objects.create(
        number=number, sha256=digest, document=document, created_by=user if user and user.is_authenticated else None
    )
    if settings.FLOTILLA_ROLE == "node":
        # A unit's own WUI: the unit is its own node, and applies what it committed itself.
        transaction.on_commit(lambda: apply_here(generation))
    else:
        from cluster.tasks import push_config

        transaction.on_commit(lambda: push_config.delay())
    return generation


def apply_here(generation):
    """A unit applies its own configuration (no worker, no SSH); a refusal is logged like a node's."""
    from nodes import agent

    try:
        agent.apply_config(envelope(generation))
    except agent.AgentError as exc:
        events.warning(f"This unit did not apply configuration generation {generation.number}: {exc}")


def _content(document):
    """What the document says, apart from the format it is written in (a newer schema is not a change)."""
    return {k: v for k, v in document.items() if k != "schema"}


def reconcile():
    """Commit a new generation when the newest one no longer says what the database says.

    Whatever the cause (a writer that bypassed the write path, a restore of the database), the
    nodes must run what the database holds; a fresh render is compared with the newest generation.
    Returns the new generation, or None when they agree.
    """
    newest = latest()
    if newest is None or _content(newest.document) == _content(render()):
        return None
    with change() as done:
        pass
    if done.generation.number != newest.number:
        events.warning(
            f"Configuration generation {newest.number} differed from the database: "
            f"now configuration generation {done.generation.number}"
        )
        return done.generation
    return None


_pushing = threading.Lock()
_pending_lock = threading.Lock()
_pending = {"all": False, "nodes": set()}


def push_soon(node_ids=None):
    """Push the newest generation (to every node behind, or again to these nodes), coalesced.

    At most one push runs in a process; a request that arrives meanwhile is folded into the
    next pass of the push under way. A node that hangs therefore holds one worker thread for
    its command timeout, never one per commit, and the health rounds keep their threads.
    """
    with _pending_lock:
        if node_ids is None:
            _pending["all"] = True
        else:
            _pending["nodes"].update(node_ids)
    while _pushing.acquire(blocking=False):
        try:
            while True:
                with _pending_lock:
                    everyone, ids = _pending["all"], set(_pending["nodes"])
                    _pending["all"], _pending["nodes"] = False, set()
                if not everyone and not ids:
                    break
                if everyone:
                    push()
                if ids:
                    push(list(Node.objects.filter(pk__in=ids, removing=False)), force=True)
        finally:
            _pushing.release()
        with _pending_lock:
            if not _pending["all"] and not _pending["nodes"]:
                return  # nothing arrived between the last pass and the release


def envelope(generation):
    return json.dumps({"generation": generation.number, "sha256": generation.sha256, "config": generation.document})


def push(nodes=None, force=False):
    """Send the newest generation to every node behind it, in parallel; record what each applied.

    ``force`` sends it whatever the node last reported (Resync): the node itself
    replaces a damaged local copy.
    """
    generation = latest()
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

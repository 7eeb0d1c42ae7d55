"""Sending the newest configuration generation to the nodes, coalesced, and what each applied."""

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from django.db.models import Value
from django.db.models.functions import Greatest

from cluster import events, ssh
from cluster.configuration.rules import envelope, latest
from cluster.models import Node

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
    from cluster.network.document import update_addresses

    # Pushes go over the interface marked "Use for Cluster Updates"; looked up here, not in the threads.
    targets = {n.pk: replace(n.target, address=update_addresses(n)[0]) for n in nodes}
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = dict(zip(nodes, pool.map(lambda n: _apply(targets[n.pk], text), nodes), strict=True))
    for node, error in results.items():
        record_outcome(node, generation, error, resync=force)
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


def record_outcome(node, generation, error, resync=False):
    """What the operator sees per node: the generation applied, or which step failed and why."""
    if error is None:
        # One statement: whoever sees the generation applied also sees the earlier failure gone.
        Node.objects.filter(pk=node.pk).update(
            applied_generation=Greatest("applied_generation", Value(generation.number)), config_error=""
        )
        return
    message = f"apply generation {generation.number}: {error}"
    failed = Node.objects.filter(pk=node.pk).exclude(config_error=message)
    if not resync:
        # A node that reported this generation applied meanwhile (its answer timed out here while
        # it finished) has nothing to resync.
        failed = failed.filter(applied_generation__lt=generation.number)
    if failed.update(config_error=message):
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

"""The cluster configuration as one canonical document and its generations: the one write path."""

import difflib
import hashlib
import json
from contextlib import contextmanager

from django.apps import apps
from django.conf import settings
from django.db import transaction

from cluster import events
from cluster.models import Cluster, ConfigGeneration, Node, VirtualService
from nodes.agent.formats import canonical


def render():
    from cluster.network.document import network_document  # network commits generations through this module

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
    number = (newest.number if newest else 0) + 1
    generation = ConfigGeneration.objects.create(
        number=number, sha256=digest, document=document, created_by=user if user and user.is_authenticated else None
    )
    if settings.FLOTILLA_ROLE == "node":
        # A unit's own WUI: the unit is its own node, and applies what it committed itself.
        transaction.on_commit(lambda: apply_here(generation))
    else:
        from cluster.tasks import push_config

        push_config.delay_on_commit()
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


def envelope(generation):
    return json.dumps({"generation": generation.number, "sha256": generation.sha256, "config": generation.document})


def diff(old, new):
    """What changed from generation ``old`` to ``new``: unified diff lines of their documents."""

    def lines(generation):
        return json.dumps(generation.document, indent=2, sort_keys=True).splitlines()

    return list(
        difflib.unified_diff(
            lines(old), lines(new), f"generation {old.number}", f"generation {new.number}", lineterm=""
        )
    )


def rollback(old, actor):
    """Bring back an earlier generation's configuration as a new generation (history is never rewritten)."""
    with transaction.atomic():
        with change(actor.user) as done:
            restore(old.document)
        events.operator_action(
            actor, f"Configuration rolled back to generation {old.number} (now generation {done.generation.number})"
        )
    return done.generation


def restore(document):
    """Make the database say what a configuration document says (membership is not configuration).

    Called inside ``config.change()``, which holds the cluster row.
    """
    cluster = Cluster.objects.get(pk=1)
    cluster.virtual_id = document["cluster"]["virtual_id"]
    cluster.drain_time = document["cluster"]["drain_time"]
    cluster.save(update_fields=["virtual_id", "drain_time"])
    _restore_virtual_services(document.get("virtual_services", []))


def _restore_virtual_services(entries):
    VirtualService.objects.all().delete()
    fields = {f.name for f in VirtualService._meta.concrete_fields} - {"id"}
    real_server = _model("RealServer")
    for entry in entries:
        vs = VirtualService.objects.create(**{k: v for k, v in entry.items() if k in fields})
        if real_server is None:
            continue
        rs_fields = {f.name for f in real_server._meta.concrete_fields} - {"id", "virtual_service"}
        for rs in entry.get("real_servers", []):
            real_server.objects.create(virtual_service=vs, **{k: v for k, v in rs.items() if k in rs_fields})


def _model(name):
    try:
        return apps.get_model("cluster", name)
    except LookupError:
        return None

"""A software update's first half: send the patch to every node, have each verify it, install on all or none.

Every step is recorded in the Rollout rows (cluster.rollout) before or right after it happens, so a
worker that dies half way loses nothing: the health round notices a send nobody moves on and sends
``rollout.sending_stalled``, which enqueues ``distribute`` again. The reboots that activate the new
software are the cluster's rolling reboot.
"""

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace

from django.conf import settings
from django.db import transaction

from cluster import clock, events, ssh
from cluster.models import Cluster, Rollout, RolloutNode
from cluster.network.document import update_addresses
from cluster.rollout import versions
from cluster.rollout.rules import Refused, preflight
from firmware import patch
from nodes.agent.formats import replace_durably

STAGE_TIMEOUT = 120  # the node reads and unpacks the whole patch
PROGRESS_EVERY = 0.5  # seconds between progress writes while sending


def patch_dir():
    return settings.VAR_DIR / "firmware"


def patch_path(sha256):
    return patch_dir() / f"{sha256}.patch"


class Busy(Refused):
    """Another update or a restore's reboots are under way."""


def accept(path, allow_downgrade=False):
    """An uploaded patch at ``path``: verified, then kept for installing; its manifest.

    Refused (Busy while an update or a restore's reboots are under way), or patch.PatchError.
    """
    if (active := Rollout.active()) is not None:
        raise Busy(active.busy)
    if path is None:
        raise Refused("Choose a software update file first.")
    manifest = patch.verify(
        path,
        settings.FIRMWARE_TRUSTED_KEYS,
        settings.FIRMWARE_MAX_BYTES,
        versions.cluster_version(),
        allow_downgrade=allow_downgrade,
    )
    # Named by its sha256 and renamed into place: a reader sees the whole patch or none; the rename
    # itself must survive a power loss once we have said "validated".
    replace_durably(path, patch_dir() / f"{manifest.sha256}.patch")
    return manifest


def kept_patches():
    """The validated patches kept on this unit, newest first."""
    paths = sorted(patch_dir().glob("*.patch"), key=lambda p: p.stat().st_mtime, reverse=True)
    kept = []
    for path in paths:
        try:
            manifest = patch.read_manifest(path)
        except patch.PatchError:
            continue
        kept.append(replace(manifest, sha256=path.stem, size=path.stat().st_size))
    return kept


def start(sha256, actor):
    """OK to install: check the cluster, record the rollout, and let a worker send the patch."""
    path = patch_path(sha256)
    if not patch.SHA256_RE.fullmatch(sha256 or "") or not path.exists():
        raise Refused("that software update is not on this unit: upload it again")
    # The kept file is checked again: what is sent to the nodes is what was validated.
    try:
        manifest = patch.verify(
            path,
            settings.FIRMWARE_TRUSTED_KEYS,
            settings.FIRMWARE_MAX_BYTES,
            versions.cluster_version(),
            allow_downgrade=True,
        )
    except patch.PatchError as exc:
        raise Refused(f"the kept software update no longer verifies: {exc}") from exc
    now = clock.now()
    with transaction.atomic():
        Cluster.objects.select_for_update().filter(pk=1).first()  # one start at a time
        if (active := Rollout.active()) is not None:
            raise Refused(active.busy)
        _, nodes = preflight(now)
        rollout = Rollout.objects.create(
            sha256=sha256,
            name=manifest.name,
            version=manifest.version,
            created_by=actor.user,
            touched_at=now,
            node_timeout=settings.ROLLOUT_NODE_TIMEOUT,
        )
        RolloutNode.objects.bulk_create(RolloutNode(rollout=rollout, node=n, size=manifest.size) for n in nodes)
        events.operator_action(actor, f"Software update to version {manifest.version} started on {len(nodes)} nodes")
        from firmware.tasks import distribute

        distribute.delay_on_commit(rollout.pk)
    return rollout


# --- send, verify, install ---------------------------------------------------------


def distribute(rollout_id):
    """Send the patch to every node and have each verify it; install on all of them or on none."""
    rollout = Rollout.objects.filter(pk=rollout_id, state=Rollout.State.SENDING).first()
    if rollout is None:
        return
    name, path = f"{rollout.sha256}.patch", patch_path(rollout.sha256)
    rows = list(rollout.nodes.select_related("node"))
    targets = {row.pk: replace(row.node.target, address=update_addresses(row.node)[0]) for row in rows}
    todo = [row for row in rows if row.state != RolloutNode.State.VERIFIED]  # resumed: not sent twice
    RolloutNode.objects.filter(pk__in=[r.pk for r in todo]).update(state=RolloutNode.State.SENDING, sent=0, message="")
    sent = {row.pk: 0 for row in todo}
    pool = ssh.get_pool()

    def send(row):
        # No database work here: the main thread records the progress and the outcome.
        target = targets[row.pk]
        pool.put(target, path, name, progress=lambda done, _total: sent.__setitem__(row.pk, done))
        return pool.call(target, "firmware-stage", name, rollout.sha256, timeout=STAGE_TIMEOUT)

    outcomes = _in_parallel(send, todo, lambda: _record_progress(rollout, sent))
    for row, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            _mark(row, RolloutNode.State.FAILED, _reason(outcome))
        else:
            _mark(row, RolloutNode.State.VERIFIED, f"verified version {outcome['version']}", sent=row.size)
    failed = list(rollout.nodes.filter(state=RolloutNode.State.FAILED).select_related("node"))
    if failed:
        return _undo(rollout, rows, targets, failed)
    installed = _in_parallel(lambda row: pool.call(targets[row.pk], "firmware-install", name, rollout.sha256), rows)
    for row, outcome in installed.items():
        if isinstance(outcome, Exception):
            _mark(row, RolloutNode.State.FAILED, f"install: {_reason(outcome)}")
        else:
            _mark(row, RolloutNode.State.INSTALLED, f"installed in slot {outcome['slot']}")
    failed = list(rollout.nodes.filter(state=RolloutNode.State.FAILED).select_related("node"))
    if failed:
        return _undo(rollout, rows, targets, failed)
    message = (
        f"The new software (version {rollout.version}) has been installed. Reboot each node to activate it: "
        "the non-admin nodes first, then the admin node."
    )
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.INSTALLED, message=message)
    events.record(f"Software version {rollout.version} installed on every node; each runs it after its reboot")


def _in_parallel(func, rows, tick=None):
    outcomes = {}
    if not rows:
        return outcomes
    with ThreadPoolExecutor(max_workers=min(16, len(rows))) as executor:
        futures = {executor.submit(func, row): row for row in rows}
        pending = set(futures)
        while pending:
            _done, pending = wait(pending, timeout=PROGRESS_EVERY)
            if tick:
                tick()
    for future, row in futures.items():
        try:
            outcomes[row] = future.result()
        except ssh.NodeError as exc:
            outcomes[row] = exc
    return outcomes


def _record_progress(rollout, sent):
    for pk, done in list(sent.items()):
        RolloutNode.objects.filter(pk=pk, sent__lt=done).update(sent=done)
    Rollout.objects.filter(pk=rollout.pk).update(touched_at=clock.now())


def _mark(row, state, message, **extra):
    RolloutNode.objects.filter(pk=row.pk).update(state=state, message=message, **extra)


def _reason(exc):
    if isinstance(exc, ssh.CommandFailed):
        return f"the node refused it: {exc.detail.split(': ', 1)[-1]}"
    return f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason


def _undo(rollout, rows, targets, failed):
    """A node refused: the others drop what they received, so no node is left half updated."""
    pool = ssh.get_pool()
    others = [row for row in rows if row not in failed]
    _in_parallel(lambda row: pool.call(targets[row.pk], "firmware-discard"), others)
    RolloutNode.objects.filter(pk__in=[r.pk for r in others]).update(
        state=RolloutNode.State.DISCARDED, message="not installed: another node refused the update"
    )
    first = failed[0]
    reasons = "; ".join(f"Node {row.node.number}: {row.message}" for row in failed)
    message = f"The software update to version {rollout.version} was refused ({reasons}). No node was changed."
    Rollout.objects.filter(pk=rollout.pk).update(state=Rollout.State.FAILED, message=message)
    events.warning(f"Software update to version {rollout.version} refused by Node {first.node.number}", node=first.node)

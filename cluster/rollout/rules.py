"""The rolling reboot: nodes taken out one at a time, drained, rebooted and back in rotation.

A software update's reboots and a restore's reboots both go through here. Every step is recorded in
the Rollout rows before or right after it happens, so a worker that dies half way loses nothing: the
health round calls ``advance()`` every second, on whichever worker runs it, and that carries on from
the rows. Reboots are asked again if a node has not rebooted yet, never twice once it has (its boot
time tells). The guards that say what the operator may do now are methods on the rows.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from cluster import clock, events, ssh
from cluster.configuration import push
from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.membership.status import Status, answering, node_status
from cluster.models import Cluster, Node, Rollout, RolloutNode, VirtualService, serving
from cluster.rollout import versions

STALLED_AFTER = timedelta(seconds=30)  # a send nobody has moved on for this long lost its worker
RESEND_REBOOT_AFTER = timedelta(seconds=5)
QUIET_AFTER = timedelta(seconds=5)  # a rolling reboot no health round has moved on: no worker runs


# A software update's send that no worker moves on any more: the firmware app sends it again.
sending_stalled = Signal()


class Refused(membership.Refused):
    pass


# --- pre-flight and start ---------------------------------------------------------


def preflight(now, rolling=False):
    """Refuse, with the reason, a rollout the cluster cannot take right now."""
    cluster = Cluster.objects.filter(shared_address__isnull=False).first()
    if cluster is None:
        raise Refused("there is no cluster: create one on Cluster Control first")
    nodes = list(Node.objects.all())
    if not nodes:
        raise Refused("the cluster has no nodes")
    latest = config.latest_number()
    has_vs = VirtualService.objects.exists()
    for node in nodes:
        name = f"Node {node.number}"
        if node.removing:
            raise Refused(f"{name} is being deleted: wait until it is gone")
        if not answering(node, now):
            raise Refused(f"{name} is Down: every node must answer its health checks before a software update")
        waiting = push.WAITING in node.config_error  # the update is what it waits for
        if not waiting and (node.applied_generation < latest or node.config_error):
            why = f" ({node.config_error})" if node.config_error else ""
            raise Refused(f"{name} is not in sync with configuration generation {latest}{why}: resync it first")
        status = node_status(node, now, cluster.drain_time, has_vs)
        if rolling and serving(node, has_vs) and status != Status.UP:
            raise Refused(
                f"{name} is {status.label}: a rolling reboot takes one node out at a time, "
                "so every enabled node must be Up first"
            )
    return cluster, nodes


# --- reboots -----------------------------------------------------------------------


def send_reboot(node_id):
    node = Node.objects.filter(pk=node_id).first()
    if node is not None:
        try:
            ssh.get_pool().call(node.target, "reboot")
        except ssh.NodeError as exc:
            events.warning(f"Node {node.number} could not be asked to reboot: {exc}", node=node)


def reboot(node_pk, actor, now=None):
    """The Reboot button: one node at a time, the admin node once every other node runs the new version."""
    with transaction.atomic():
        # The check and the mark under one lock: two operators clicking at once are taken one after the
        # other, and the second sees the node the first one took out.
        rollout = Rollout.objects.select_for_update().filter(state__in=Rollout.ACTIVE).first()
        now = now or clock.now()  # read once the lock is held: the other operator's mark is in by then
        node = _reboot_checked(node_pk, rollout, now)
        RolloutNode.objects.update_or_create(
            rollout=rollout,
            node=node,
            defaults={"reboot_requested_at": now, "reboot_sent_at": now, "booted_before": node.booted_at},
        )
        events.operator_action(actor, f"Node {node.number} rebooted to run version {rollout.version}", node=node)
        from cluster.tasks import reboot_node

        reboot_node.delay_on_commit(node.pk)
    return node


def _reboot_checked(node_pk, rollout, now):
    node = Node.objects.filter(pk=node_pk).first()
    if node is None:
        raise Refused("that node is no longer in the cluster")
    if rollout is not None and rollout.kind == Rollout.Kind.RESTORE:
        raise Refused(rollout.busy)
    if rollout is not None and rollout.state == Rollout.State.ROLLING:
        raise Refused("a rolling reboot is under way: cancel it first to reboot nodes one by one")
    if rollout is None or not rollout.can_reboot:
        raise Refused("there is no installed software update waiting for a reboot")
    if node.version == rollout.version:
        raise Refused(f"Node {node.number} already runs version {rollout.version}")
    others = list(Node.objects.exclude(pk=node.pk))
    if node.is_admin:
        behind = [n for n in others if n.version != rollout.version]
        if behind:
            raise Refused(
                f"Node {node.number} is the admin node: it is rebooted last, once every other node runs version "
                f"{rollout.version} (Node {behind[0].number} runs {behind[0].version or 'an unknown version'})"
            )
    if why := rollout.out(now, exclude=node):
        raise Refused(f"{why}. One node is out at a time: reboot Node {node.number} once it is back")
    return node


def start_rolling(actor):
    now = clock.now()
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update().filter(kind=Rollout.Kind.UPDATE, state__in=Rollout.ROLLABLE).first()
        )
        if rollout is None:
            raise Refused("there is no installed software update waiting for a reboot")
        preflight(now, rolling=True)
        _move(rollout, state=Rollout.State.ROLLING, step=Rollout.Step.NONE, step_at=now, current=None, message="")
        events.operator_action(actor, f"Rolling reboot to version {rollout.version} started")
    return rollout


def resume(actor):
    now = clock.now()
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().filter(state__in=Rollout.RESUMABLE).first()
        if rollout is None:
            raise Refused("there is no halted rolling reboot to resume")
        # The node it halted on gets a whole timeout again.
        _move(rollout, state=Rollout.State.ROLLING, step_at=now, reboot_sent_at=now, message="")
        events.operator_action(actor, f"Rolling reboot {rollout.purpose} resumed")
    return rollout


def cancel(actor):
    """Stop a rolling reboot: no further node is taken out; the one it was on goes back into rotation."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().filter(state__in=Rollout.CANCELLABLE).first()
        if rollout is None:
            raise Refused("there is no rolling reboot to cancel")
        if rollout.current_id:
            Node.objects.filter(pk=rollout.current_id).update(maintenance_since=None)
        if rollout.kind == Rollout.Kind.RESTORE:
            # The restored configuration is already in force: only the remaining reboots are dropped.
            message = "Cancelled: the nodes not rebooted yet run the restored configuration without a reboot."
            _move(rollout, state=Rollout.State.DONE, step=Rollout.Step.NONE, current=None, message=message)
        else:
            _move(rollout, state=Rollout.State.INSTALLED, step=Rollout.Step.NONE, current=None, message="")
        events.operator_action(actor, f"Rolling reboot {rollout.purpose} cancelled")
    return rollout


def _move(rollout, **fields):
    for name, value in fields.items():
        setattr(rollout, name, value)
    rollout.save(update_fields=list(fields))


def advance(now):
    """Called by every health round: finish, resume or move on whatever update is under way."""
    settle_reboots(now)
    rollout = Rollout.active()
    if rollout is None:
        return
    if rollout.state == Rollout.State.SENDING:
        return _resume_sending(rollout, now)
    nodes = list(Node.objects.filter(removing=False))
    if nodes and next_node(rollout, nodes) is None:
        return _finish(rollout)
    if rollout.state != Rollout.State.ROLLING:
        return
    with transaction.atomic():
        locked = Rollout.objects.select_for_update(skip_locked=True).filter(pk=rollout.pk, state=rollout.state).first()
        if locked is None:
            return  # another worker's round holds it
        after = _step(locked, {n.pk: n for n in nodes}, now)
        _move(locked, touched_at=now)
    if after:
        after()


def settle_reboots(now):
    """A node told to reboot is out until it is back: clear its mark then, and ask it again if the request was lost.

    The rolling reboot asks its own node again itself; this asks again for a Reboot button's request
    that died with its worker, only while the node still answers on the boot it was told to leave.
    """
    marks = list(RolloutNode.objects.exclude(reboot_requested_at=None).select_related("rollout"))
    if not marks:
        return
    _, rows, has_vs = membership.node_rows(now)
    rows = {row["node"].pk: row for row in rows}
    for mark in marks:
        row = rows.get(mark.node_id)
        if row is None:
            continue
        node, rollout = row["node"], mark.rollout
        mine = RolloutNode.objects.filter(pk=mark.pk, reboot_requested_at=mark.reboot_requested_at)
        if mark.still_out(row, has_vs, now) is None:
            mine.update(reboot_requested_at=None, state=RolloutNode.State.REBOOTED)
            continue
        rolling = rollout.state in (Rollout.State.ROLLING, Rollout.State.HALTED) and rollout.current_id == node.pk
        lost = node.booted_at == mark.booted_before and answering(node, now)
        due = mark.reboot_sent_at is None or now - mark.reboot_sent_at >= RESEND_REBOOT_AFTER
        if not (rollout.state in Rollout.ACTIVE and not rolling and lost and due):
            continue
        if mine.filter(reboot_sent_at=mark.reboot_sent_at).update(reboot_sent_at=now):  # one worker asks
            send_reboot(node.pk)


def _resume_sending(rollout, now):
    stalled = now - STALLED_AFTER
    if Rollout.objects.filter(pk=rollout.pk, touched_at__lt=stalled).update(touched_at=now):
        events.warning(f"Software update to version {rollout.version}: sending resumed after an interruption")
        sending_stalled.send(sender=Rollout, rollout=rollout)


def _finish(rollout):
    if rollout.kind == Rollout.Kind.RESTORE:
        message, line = "Every node has rebooted.", "Restore complete: every node has rebooted"
    else:
        message = f"Every node runs version {rollout.version}."
        line = f"Software update complete: every node runs version {rollout.version}"
    # One transaction: whoever sees the update done also sees its log line.
    with transaction.atomic():
        if Rollout.objects.filter(pk=rollout.pk, state=rollout.state).update(
            state=Rollout.State.DONE, step=Rollout.Step.NONE, message=message
        ):
            Node.objects.exclude(maintenance_since=None).update(maintenance_since=None)
            events.record(line)


def next_node(rollout, nodes):
    """The next node to reboot: non-admin nodes in order of their ID, the admin node last."""
    rebooted = set(rollout.nodes.filter(state=RolloutNode.State.REBOOTED).values_list("node_id", flat=True))
    order = sorted(nodes, key=lambda n: (n.is_admin, n.number))
    if rollout.kind == Rollout.Kind.RESTORE:
        return next((n for n in order if n.pk not in rebooted), None)
    return next((n for n in order if n.version != rollout.version), None)


def _step(rollout, nodes, now):
    """One move of the rolling reboot; returns the node call to make once the move is committed."""
    cluster = Cluster.get()
    has_vs = VirtualService.objects.exists()
    node = nodes.get(rollout.current_id)
    timeout = timedelta(seconds=rollout.node_timeout)
    if rollout.step == Rollout.Step.NONE or node is None:
        node = next_node(rollout, nodes.values())
        if node is None:
            return None
        if why := rollout.out(now, exclude=node):
            if now - (rollout.step_at or now) > timeout:
                return _halt(rollout, node, f"it waited {rollout.node_timeout} s for another node to be back ({why})")
            waiting = f"Node {node.number} waits: {why}."
            if rollout.message != waiting:
                _move(rollout, message=waiting)
            return None
        Node.objects.filter(pk=node.pk).update(maintenance_since=now)
        _move(rollout, current=node, step=Rollout.Step.DRAINING, step_at=now, message="")
        drain = cluster.drain_time if serving(node, has_vs) else 0
        events.record(f"Rolling reboot: Node {node.number} drains for {drain} s, then reboots", node=node)
        return None
    if rollout.step == Rollout.Step.DRAINING:
        drain = timedelta(seconds=cluster.drain_time if serving(node, has_vs) else 0)
        if now - rollout.step_at < drain:
            return None
        _move(rollout, step=Rollout.Step.REBOOTING, step_at=now, reboot_sent_at=now, booted_before=node.booted_at)
        RolloutNode.objects.update_or_create(
            rollout=rollout,
            node=node,
            defaults={"reboot_requested_at": now, "reboot_sent_at": now, "booted_before": node.booted_at},
        )
        events.record(f"Rolling reboot: Node {node.number} reboots {rollout.purpose}", node=node)
        return lambda: send_reboot(node.pk)
    if rollout.step == Rollout.Step.REBOOTING:
        if node.booted_at != rollout.booted_before and answering(node, now):
            if rollout.kind == Rollout.Kind.UPDATE and node.version != rollout.version:
                return _halt(rollout, node, f"it came back on version {node.version}, not {rollout.version}")
            Node.objects.filter(pk=node.pk).update(maintenance_since=None)
            _move(rollout, step=Rollout.Step.WARMING, step_at=now)
            return None
        if now - rollout.step_at > timeout:
            why = node.last_error or f"it still runs version {node.version}"
            return _halt(rollout, node, f"it did not come back within {rollout.node_timeout} s of its reboot ({why})")
        # Answering all along on the same boot: the request never arrived (a node that went quiet is rebooting).
        unchanged = node.booted_at == rollout.booted_before and answering(node, now)
        if unchanged and now - rollout.reboot_sent_at >= RESEND_REBOOT_AFTER:
            _move(rollout, reboot_sent_at=now)  # the request may have died with a worker: ask again
            return lambda: send_reboot(node.pk)
        return None
    status = node_status(node, now, cluster.drain_time, has_vs)
    back = status == Status.UP if serving(node, has_vs) else answering(node, now)
    if back:
        RolloutNode.objects.filter(rollout=rollout, node=node).update(
            state=RolloutNode.State.REBOOTED, reboot_requested_at=None
        )
        events.record(f"Rolling reboot: Node {node.number} is back {rollout.purpose.removeprefix('to ')}", node=node)
        _move(rollout, step=Rollout.Step.NONE, step_at=now)
    elif now - rollout.step_at > timeout:
        return _halt(rollout, node, f"it is back but {status.label}, not in rotation")
    return None


def _halt(rollout, node, why):
    message = f"Rolling reboot halted at Node {node.number}: {why}. Resume it or cancel it."
    _move(rollout, state=Rollout.State.HALTED, message=message)
    events.warning(message, node=node)
    return None


def start_restore_reboots(user):
    """Called inside a restore's transaction: the restore and its reboots commit together or not at all."""
    now = clock.now()
    for earlier in Rollout.objects.select_for_update().filter(kind=Rollout.Kind.RESTORE, state__in=Rollout.ACTIVE):
        _move(earlier, state=Rollout.State.DONE, step=Rollout.Step.NONE, message="Superseded by a later restore.")
    Node.objects.exclude(maintenance_since=None).update(maintenance_since=None)
    rollout = Rollout.objects.create(
        kind=Rollout.Kind.RESTORE,
        state=Rollout.State.ROLLING,
        created_by=user if user and user.is_authenticated else None,
        touched_at=now,
        step_at=now,
        node_timeout=settings.ROLLOUT_NODE_TIMEOUT,
    )
    nodes = Node.objects.filter(removing=False)
    RolloutNode.objects.bulk_create(
        RolloutNode(rollout=rollout, node=n, state=RolloutNode.State.INSTALLED) for n in nodes
    )
    events.record("Restore: the nodes reboot one at a time, the admin node last")
    return rollout


# --- what the pages show -----------------------------------------------------------


def panel():
    """The update under way (or the last one) for Cluster Control."""
    rollout = Rollout.objects.first()
    if rollout is None:
        return {}
    now = clock.now()
    update = rollout.kind == Rollout.Kind.UPDATE
    quiet = rollout.state == Rollout.State.ROLLING and rollout.touched_at and now - rollout.touched_at > QUIET_AFTER
    return {
        "rollout": rollout,
        "rollout_nodes": list(rollout.nodes.select_related("node")),
        "rollout_stalled": quiet,
        "reboot_open": rollout.can_reboot,
        # What the nodes not rebooted yet will run once they are.
        "pending_version": update
        and rollout.state in (Rollout.State.INSTALLED, Rollout.State.ROLLING, Rollout.State.HALTED)
        and rollout.version,
        "running_versions": versions.describe(),
    }

"""Long operations as one resource to poll: ``<kind>-<pk of its row>``, read from the rows the workers keep.

Nothing new is stored: a join is its JoinRequest, a delete its Node row (gone once deleted), a node's
reboot its RolloutNode, a software update, a rolling reboot and a restore's reboots their Rollout.
"""

from django.http import Http404
from django.urls import reverse

from cluster.models import Event, JoinRequest, Node, Rollout, RolloutNode

KINDS = ("join", "delete", "update", "rolling-reboot", "restore", "reboot")
RUNNING, SUCCEEDED, FAILED, HALTED = "running", "succeeded", "failed", "halted"


def operation(kind, pk, state, message, progress=None):
    op_id = f"{kind}-{pk}"
    body = {"id": op_id, "kind": kind, "state": state, "message": message, "url": url(op_id)}
    if progress is not None:
        body["progress"] = progress
    return body


def url(op_id):
    return reverse("api_operation", args=[op_id])


def find(op_id):
    """The operation ``op_id`` names, or Http404."""
    kind, _, pk = op_id.rpartition("-")
    if kind not in KINDS or not pk.isdigit() or len(pk) > 12:
        raise Http404("No such operation.")
    return READERS[kind](int(pk))


def of_join(join):
    state = {JoinRequest.State.PENDING: RUNNING, JoinRequest.State.DONE: SUCCEEDED}.get(join.state, FAILED)
    message = join.message or f"Adding {join.address}: {join.get_step_display()}"
    return operation("join", join.pk, state, message)


def _join(pk):
    join = JoinRequest.objects.filter(pk=pk).first()
    if join is None:
        raise Http404("No such operation.")
    return of_join(join)


def of_delete(node_pk):
    """Running while the node's row is being removed; gone means deleted; kept means the worker refused."""
    node = Node.objects.filter(pk=node_pk).first()
    if node is None:
        return operation("delete", node_pk, SUCCEEDED, "The node was deleted: it is now a standalone unit.")
    if node.removing:
        return operation("delete", node_pk, RUNNING, f"Node {node.number} is being deleted.")
    last = Event.objects.filter(node=node, level=Event.Level.WARNING).values_list("message", flat=True).first()
    return operation("delete", node_pk, FAILED, last or f"Node {node.number} was not deleted.")


def _delete(pk):
    node = Node.objects.filter(pk=pk).first()
    # A node that is there and was never asked to leave has no delete operation. (A deleted node's row
    # is gone: its delete is read as done.)
    if node is not None and not node.removing:
        asked = Event.objects.filter(node=node, message__startswith=f"Node {node.number} delete requested")
        if not asked.exists():
            raise Http404("No such operation.")
    return of_delete(pk)


def of_reboot(mark):
    node = mark.node
    if mark.reboot_requested_at is not None:
        return operation("reboot", mark.pk, RUNNING, f"Node {node.number} is rebooting.")
    if mark.state == RolloutNode.State.REBOOTED:
        return operation("reboot", mark.pk, SUCCEEDED, f"Node {node.number} rebooted and is back.")
    return operation("reboot", mark.pk, FAILED, mark.message or f"Node {node.number} did not reboot.")


def _reboot(pk):
    mark = RolloutNode.objects.select_related("node").filter(pk=pk).first()
    if mark is None or (mark.reboot_requested_at is None and mark.state != RolloutNode.State.REBOOTED):
        raise Http404("No such operation.")
    return of_reboot(mark)


def _progress(rollout, done_states):
    rows = list(rollout.nodes.values_list("state", flat=True))
    return {"done": sum(1 for s in rows if s in done_states), "total": len(rows)}


def of_update(rollout):
    """The install: send, verify and install on every node (the reboots are the rolling reboot's)."""
    states = {Rollout.State.SENDING: RUNNING, Rollout.State.FAILED: FAILED}
    state = states.get(rollout.state, SUCCEEDED)
    done = (RolloutNode.State.VERIFIED, RolloutNode.State.INSTALLED, RolloutNode.State.REBOOTED)
    message = rollout.message or rollout.get_state_display()
    return operation("update", rollout.pk, state, message, _progress(rollout, done))


def of_rolling(rollout, kind="rolling-reboot"):
    if rollout.state == Rollout.State.ROLLING:
        state = RUNNING
    elif rollout.state == Rollout.State.HALTED:
        state = HALTED
    elif rollout.state == Rollout.State.DONE:
        state = SUCCEEDED if not rollout.message.startswith(("Cancelled", "Superseded")) else FAILED
    else:
        # A cancelled update's rolling reboot goes back to Installed: no longer running, not done.
        state = FAILED
    message = rollout.message or rollout.get_state_display()
    if kind == "rolling-reboot" and rollout.state == Rollout.State.INSTALLED:
        message = "Cancelled: no further node is taken out; the installed update waits for its reboots."
    return operation(kind, rollout.pk, state, message, _progress(rollout, (RolloutNode.State.REBOOTED,)))


def of_rollout(rollout):
    """The operation a Rollout row is now: a restore's reboots, a rolling reboot, or the install before it."""
    if rollout.kind == Rollout.Kind.RESTORE:
        return of_rolling(rollout, "restore")
    if rollout.state in (Rollout.State.ROLLING, Rollout.State.HALTED):
        return of_rolling(rollout)
    return of_update(rollout)


def _rollout(kind):
    def read(pk):
        wanted = Rollout.Kind.RESTORE if kind == "restore" else Rollout.Kind.UPDATE
        rollout = Rollout.objects.filter(pk=pk, kind=wanted).first()
        if rollout is None:
            raise Http404("No such operation.")
        return of_update(rollout) if kind == "update" else of_rolling(rollout, kind)

    return read


READERS = {
    "join": _join,
    "delete": _delete,
    "reboot": _reboot,
    "update": _rollout("update"),
    "rolling-reboot": _rollout("rolling-reboot"),
    "restore": _rollout("restore"),
}

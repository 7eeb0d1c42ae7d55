"""A software update of the cluster: the patch sent to every node, then the reboots that activate it.

The rows are the truth about an update: a worker that dies half way leaves them
as they were, and the next worker carries on from them.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from cluster.status import Status, answering


def serving(node, has_vs):
    """A node that takes traffic when Up: the one a reboot must wait to see Up again."""
    return node.enabled and not node.is_admin and has_vs


def clock(moment):
    return timezone.localtime(moment).strftime("%H:%M:%S")


class Rollout(models.Model):
    """A software update, or the reboots after a restore: both take the nodes out one at a time."""

    class Kind(models.TextChoices):
        UPDATE = "update", "Software update"
        RESTORE = "restore", "Reboots after a restore"

    class State(models.TextChoices):
        SENDING = "sending", "Sending to the nodes"
        FAILED = "failed", "Refused"
        INSTALLED = "installed", "Installed: reboot the nodes"
        ROLLING = "rolling", "Rolling reboot"
        HALTED = "halted", "Rolling reboot halted"
        DONE = "done", "Done"

    ACTIVE = (State.SENDING, State.INSTALLED, State.ROLLING, State.HALTED)

    class Step(models.TextChoices):
        NONE = "", "—"
        DRAINING = "draining", "Draining"
        REBOOTING = "rebooting", "Rebooting"
        WARMING = "warming", "Coming back"

    kind = models.CharField(max_length=8, choices=Kind, default=Kind.UPDATE)
    sha256 = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=10, choices=State, default=State.SENDING)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    touched_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last moved it on.")
    # The rolling reboot's place: which node, which step, since when.
    current = models.ForeignKey("cluster.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step = models.CharField(max_length=10, choices=Step, default=Step.NONE, blank=True)
    step_at = models.DateTimeField(null=True, blank=True)
    booted_before = models.FloatField(default=0)
    reboot_sent_at = models.DateTimeField(null=True, blank=True)
    node_timeout = models.PositiveIntegerField(default=300)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.title} ({self.get_state_display()})"

    @property
    def title(self):
        if self.kind == self.Kind.RESTORE:
            return "Restore: the nodes reboot one at a time"
        return f"Software update to version {self.version}"

    @property
    def purpose(self):
        """Why a node reboots, as the log says it."""
        return (
            "to take the restored configuration" if self.kind == self.Kind.RESTORE else f"to run version {self.version}"
        )

    @property
    def busy(self):
        """Why another update or restore cannot start now."""
        if self.kind == self.Kind.RESTORE:
            return "the nodes are still rebooting one at a time after a restore: wait for it or cancel it"
        return f"another software update (version {self.version}) is in progress: finish or cancel it"

    @classmethod
    def active(cls):
        return cls.objects.filter(state__in=cls.ACTIVE).first()

    def out(self, now, exclude=None):
        """Why no node may be taken out at ``now``: the first node other than ``exclude`` that is out, or None.

        A node is out from the moment it is told to reboot until it is Up again on its new boot
        (past its warm-up), and a serving node is out whenever it is not Up: taking a second one
        out would leave a three-node cluster with one serving node. ``exclude`` (the node about to
        go) counts only while its own reboot is still under way.
        """
        from cluster.views import node_rows  # the one place a node's status is derived; it imports this app

        _, rows, has_vs = node_rows(now)
        marks = {m.node_id: m for m in self.nodes.exclude(reboot_requested_at=None)}
        for row in rows:
            node = row["node"]
            if node.pk in marks:
                why = marks[node.pk].still_out(row, has_vs, now)
            elif row["deleting"] or (exclude is not None and node.pk == exclude.pk):
                continue
            elif serving(node, has_vs):
                why = None if row["status"] == Status.UP else _status_text(row)
            elif node.enabled or node.is_admin:
                # Not in rotation yet (no Virtual Service) or the admin node: out while it does not answer.
                why = None if answering(node, now) else f"Node {node.number} is Down"
            else:
                why = None  # an operator disabled it: it takes no traffic either way
            if why:
                return why
        return None

    @property
    def waiting_for(self):
        """For the page: the node the next Reboot waits for, if any."""
        return self.out(timezone.now())


class RolloutNode(models.Model):
    """One node's part of an update: the transfer, the node's own check and the install."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        SENDING = "sending", "Sending"
        VERIFIED = "verified", "Verified"
        INSTALLED = "installed", "Installed"
        REBOOTED = "rebooted", "Rebooted"
        FAILED = "failed", "Refused"
        DISCARDED = "discarded", "Not installed"

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey("cluster.Node", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=State, default=State.WAITING)
    sent = models.BigIntegerField(default=0)
    size = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    # One node out at a time: set when the node is told to reboot, cleared once it is Up again on its new boot.
    reboot_requested_at = models.DateTimeField(null=True, blank=True)
    reboot_sent_at = models.DateTimeField(null=True, blank=True, help_text="When the reboot request was last sent.")
    booted_before = models.FloatField(default=0, help_text="The node's boot time when it was told to reboot.")

    class Meta:
        ordering = ["node__number"]
        constraints = [models.UniqueConstraint(fields=["rollout", "node"], name="unique_rollout_node")]

    def __str__(self):
        return f"Node {self.node.number}: {self.get_state_display()}"

    @property
    def percent(self):
        return int(100 * self.sent / self.size) if self.size else 0

    def rebooted(self, node, now):
        """It answers on a boot other than the one it was told to leave."""
        return node.booted_at != self.booted_before and answering(node, now)

    def still_out(self, row, has_vs, now):
        """Why this node, told to reboot, is not back yet (``row`` from cluster.views.node_rows); None once it is."""
        node = row["node"]
        if self.reboot_requested_at is None:
            return None
        if not self.rebooted(node, now):
            return f"Node {node.number} is still out: rebooting since {clock(self.reboot_requested_at)}"
        if serving(node, has_vs) and row["status"] != Status.UP:
            return _status_text(row)
        return None


def _status_text(row):
    """ "Node 4 is Starting (12 s left)", as the node table shows it."""
    text = f"Node {row['node'].number} is {row['status'].label}"
    return text + (f" ({row['warm_up_left']} s left)" if row.get("warm_up_left") else "")

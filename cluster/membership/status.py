"""Node status: one function, facts in, status out.

Stored: the operator's intent (enabled, disabled_at), health facts (last_ok_at,
checked_at, healthy_since, failures, accepting, maintenance_since) and two facts of the
cluster (when its first Virtual Service appeared, when the running control plane began
checking). Derived here: what the page, the logs and the API show. ``now`` is always
passed in, so that the 30 s warm-up and the drain time are tested with a clock, not
with sleeps.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models

STALE_AFTER = timedelta(seconds=3)  # no good answer for this long means Down


class Status(models.TextChoices):
    ADMIN = "admin", "Admin"
    STARTING = "starting", "Starting"
    UP = "up", "Up"
    DOWN = "down", "Down"
    DRAINING = "draining", "Draining"
    DISABLED = "disabled", "Disabled"
    CHECKING = "checking", "Checking"


# The seed's colours: blue admin, green up, red down, yellow disabled; Starting is
# green and red (the later WUI guide); Draining is not in the seed: purple. Checking (a
# restarted control plane has not heard from the node yet) is no alarm: grey.
def takes_traffic(node):
    """Whether a node should take new connections: the operator's intent, unless a reboot drains it."""
    return (node.enabled or node.is_admin) and not node.maintenance_since


# What the admin node's traffic spreader does with a node in each status (HAProxy's server states,
# set through its runtime API): Draining takes no new connections while its open ones go on;
# Starting, Disabled and Down take none. Checking is absent: no news, so the last state stands.
ROTATION = {
    Status.ADMIN: "ready",
    Status.UP: "ready",
    Status.STARTING: "maint",
    Status.DRAINING: "drain",
    Status.DISABLED: "closed",  # the drain time is over: what is still open is closed
    Status.DOWN: "maint",
}


def rotation(node, status):
    """The spreader's state for one node. The admin node's row always reads Admin: it drains when
    an operator disabled it or a rolling reboot takes it out."""
    if status == Status.ADMIN and not (node.enabled and not node.maintenance_since):
        return "drain"
    return ROTATION.get(status)


COLOURS = {
    Status.ADMIN: "blue",
    Status.STARTING: "green-red",
    Status.UP: "green",
    Status.DOWN: "red",
    Status.DRAINING: "purple",
    Status.DISABLED: "yellow",
    Status.CHECKING: "grey",
}
TITLES = {
    Status.DRAINING: "Drain stopping: no new connections; open ones may finish",
    Status.CHECKING: "The control plane has just started and has not heard from this node yet",
}


@dataclass(frozen=True)
class Facts:
    is_admin: bool
    enabled: bool
    disabled_at: object
    last_ok_at: object
    healthy_since: object
    failures: int
    accepting: bool
    maintenance_since: object = None
    checked_at: object = None


def facts_of(node):
    return Facts(
        node.is_admin,
        node.enabled,
        node.disabled_at,
        node.last_ok_at,
        node.healthy_since,
        node.failures,
        node.accepting,
        node.maintenance_since,
        node.checked_at,
    )


def warm_up():
    """The seed: "only come online after it has been up for 30 seconds"."""
    return timedelta(seconds=settings.NODE_WARMUP_SECONDS)


def answering(node, now):
    """Good answers to the health checks, and recent ones: what Down is the absence of."""
    return not node.failures and node.last_ok_at is not None and now - node.last_ok_at <= STALE_AFTER


def unheard(node, checks_since):
    """Not checked since the control plane (re)started: nobody asked it while the control plane was off."""
    if checks_since is None:
        return False
    return node.checked_at is None or node.checked_at < checks_since


def warm_up_start(node, services_since=None):
    """When the node last became eligible for rotation: the 30 s count from there.

    ``healthy_since`` is moved on by its first good answer after Down or a reboot, by Enable,
    and by the health round that notes the cluster's first Virtual Service; ``services_since``
    is when a first Virtual Service appeared that no round has noted yet. None when the
    warm-up has not started (no good answer yet).
    """
    if node.healthy_since is None:
        return None
    return max(node.healthy_since, services_since) if services_since else node.healthy_since


def warm_up_left(node, now, services_since=None):
    """Whole seconds of the warm-up still to go (0 once it is over), or None before it has started."""
    start = warm_up_start(node, services_since)
    if start is None:
        return None
    left = (start + warm_up() - now).total_seconds()
    return max(0, math.ceil(left))


def drain_left(node, now, drain_time):
    """Whole seconds of the Node Drain Time still to go (0 once it is over), counted from Disable or
    from a rolling reboot taking the node out; None when it is not draining."""
    start = node.disabled_at if not node.enabled else node.maintenance_since
    if start is None:
        return None
    return max(0, math.ceil((start + timedelta(seconds=drain_time) - now).total_seconds()))


def cluster_facts(cluster, has_virtual_services, now):
    """What node_status needs of the Cluster row, as keyword arguments.

    A first Virtual Service that the health round has not noted yet appeared just now: the
    nodes start their warm-up with it rather than show Up at once, until the round moves
    their warm-up start (``healthy_since``) to the moment it noted it.
    """
    unnoted = has_virtual_services and cluster.services_since is None
    return {"services_since": now if unnoted else None, "checks_since": cluster.checks_since}


def node_status(node, now, drain_time, has_virtual_services, services_since=None, checks_since=None):
    """The node's status at ``now``.

    ``services_since``: when a first Virtual Service appeared that the nodes' warm-up start
    does not count yet (None: none such). ``checks_since``: when the running control plane began checking (None: not
    known, so a node without a recent answer is Down).
    """
    f = facts_of(node)
    if f.is_admin:
        return Status.ADMIN
    if not f.enabled:
        if f.disabled_at and now - f.disabled_at < timedelta(seconds=drain_time):
            return Status.DRAINING
        return Status.DISABLED
    if f.maintenance_since and answering(f, now):
        # A rolling reboot took it out: it drains, then waits for its reboot, taking no new
        # connections all along; it is never shown Starting between the drain and the reboot.
        return Status.DRAINING
    if not answering(f, now):
        # A restarted control plane has not asked yet: its silence is no news of the node.
        return Status.CHECKING if unheard(f, checks_since) else Status.DOWN
    if not has_virtual_services:
        return Status.DISABLED
    if f.accepting and warm_up_left(f, now, services_since) == 0:
        return Status.UP
    return Status.STARTING


def cluster_summary(statuses, operator_disabled):
    """The seed's line: "Cluster running on 3 of 4 nodes (1 disabled)".

    ``operator_disabled`` counts nodes an operator disabled: with no Virtual
    Services every node shows Disabled, but none is "disabled" in this line.
    """
    total = len(statuses)
    down = sum(1 for s in statuses if s == Status.DOWN)
    running = total - down - operator_disabled
    line = f"Cluster running on {'only ' if down else ''}{running} of {total} nodes"
    return line + (f" ({operator_disabled} disabled)" if operator_disabled else "")

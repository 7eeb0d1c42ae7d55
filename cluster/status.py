"""Node status: one function, facts in, status out.

Stored: the operator's intent (enabled, disabled_at) and health facts
(last_ok_at, healthy_since, failures, accepting, maintenance_since). Derived here: what the
page, the logs and the API show. ``now`` is always passed in, so that the
30 s warm-up and the drain time are tested with a clock, not with sleeps.
"""

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


# The seed's colours: blue admin, green up, red down, yellow disabled; Starting is
# green and red (the later WUI guide); Draining is not in the seed: purple.
COLOURS = {
    Status.ADMIN: "blue",
    Status.STARTING: "green-red",
    Status.UP: "green",
    Status.DOWN: "red",
    Status.DRAINING: "purple",
    Status.DISABLED: "yellow",
}
TITLES = {Status.DRAINING: "Drain stopping: no new connections; open ones may finish"}


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
    )


def warm_up():
    """The seed: "only come online after it has been up for 30 seconds"."""
    return timedelta(seconds=settings.NODE_WARMUP_SECONDS)


def answering(node, now):
    """Good answers to the health checks, and recent ones: what Down is the absence of."""
    return not node.failures and node.last_ok_at is not None and now - node.last_ok_at <= STALE_AFTER


def node_status(node, now, drain_time, has_virtual_services):
    f = facts_of(node)
    if f.is_admin:
        return Status.ADMIN
    if not f.enabled:
        if f.disabled_at and now - f.disabled_at < timedelta(seconds=drain_time):
            return Status.DRAINING
        return Status.DISABLED
    if f.maintenance_since and now - f.maintenance_since < timedelta(seconds=drain_time):
        return Status.DRAINING  # a rolling reboot drains it first
    if not answering(f, now):
        return Status.DOWN
    if not has_virtual_services:
        return Status.DISABLED
    if f.accepting and f.healthy_since and now - f.healthy_since >= warm_up():
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

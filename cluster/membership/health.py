"""Health checks: the admin asks every member for its status about once a second.

Each probe goes over the node's persistent agent session, so a check costs a
round trip, not an SSH handshake. A probe also reconciles: a node that came
back is told the operator's intent (take traffic or not), its membership and
the newest configuration, without anyone clicking anything.
"""

import json
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import timedelta

from celery import signals
from django.db import connection, transaction

from cluster import clock, events, ssh
from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.membership.status import (
    Status,
    cluster_facts,
    cluster_summary,
    node_status,
    rotation,
    takes_traffic,
)
from cluster.models import Cluster, Node, VirtualService
from cluster.network.document import check_addresses
from cluster.rollout import rules as rollout

PROBE_TIMEOUT = 1.5
ROUND_DEADLINE = 2.0  # a round records every node within this, answered or not
RESEND_ROTATION = timedelta(seconds=5)  # a rebooted admin node learns the rotation again within this
# Shared by the rounds, and not waited for: a probe stuck on a hung node finishes in the background.
_probes = ThreadPoolExecutor(max_workers=64, thread_name_prefix="health-probe")
_running = threading.Lock()
# When this control plane process started: every check it records is later, every check recorded
# before it (by the process it replaces, before a reboot or an update) is earlier.
STARTED_AT = clock.now()
_STARTED_OFFSET = clock.offset()


def started_at():
    """STARTED_AT, on a clock moved back since (only the tests' clock is, between tests): the start
    is never put in that clock's future, where every check would look older than it."""
    return STARTED_AT - max(_STARTED_OFFSET - clock.offset(), clock.ZERO)


@signals.worker_ready.connect
def announce_start(**kwargs):
    """Say on the Cluster row that checking starts again, before the first round: until then a
    member's old answer is no news of it (Checking), not a sign that it died (Down)."""
    try:
        _announce(Cluster.objects.filter(pk=1).first())
    finally:
        connection.close()  # this thread runs no rounds: keep no connection open for it


def _announce(cluster):
    started = started_at()
    if cluster is not None and (cluster.checks_since is None or cluster.checks_since < started):
        Cluster.objects.filter(pk=cluster.pk).update(checks_since=started)
        cluster.checks_since = started


def check_all():
    """One round of checks; a round still running makes the next one a no-op."""
    if not _running.acquire(blocking=False):
        return False
    try:
        cluster = Cluster.objects.filter(shared_address__isnull=False).first()
        if cluster is None:
            return False
        # One clock for the whole round: the time moved on (a test's clock) half way through never
        # makes this round's first answers look older than its last.
        now = clock.reading()
        nodes = list(Node.objects.filter(removing=False))
        latest = config.latest_number()
        # Checks go over the interface marked "Use for Cluster checks" (Network Setup).
        addresses = check_addresses(nodes)
        behind = []
        futures = {_probes.submit(probe, n, cluster.shared_address, addresses[n.pk]): n for n in nodes}
        waiting = set(futures)
        try:
            # Recorded as each answer comes: a node that is slow to answer never delays the others'.
            for future in as_completed(futures, timeout=ROUND_DEADLINE):
                waiting.discard(future)
                node, report = futures[future], future.result()
                record(node, report, now())
                if not isinstance(report, Exception) and report.get("generation", 0) < latest:
                    behind.append(node.pk)
        except TimeoutError:
            pass
        # A node whose probe is still stuck (connecting to a hung machine) has not answered: the
        # round ends on time, so that the next one is not late for every other node.
        for future in waiting:
            node = futures[future]
            record(node, ssh.CommandTimeout(node.target, f"no answer within {ROUND_DEADLINE:g} s"), now())
        if behind:
            # The catch-up push runs on its own, never inside the round that found it.
            from cluster.tasks import push_config

            push_config.delay(behind)
        moment = now()
        log_transitions(moment)
        config.reconcile()
        membership.resume_stale(moment)
        # A software update moves on from what this round saw (the rows, not this worker, hold its place).
        rollout.advance(moment)
        # After the rollout's move: a node it takes out drains from this round on, not the next.
        spread(moment)
        return True
    finally:
        _running.release()


def probe(node, shared_address, address=None):
    """Ask one node; put right what differs from the database. Returns its status or the error."""
    pool = ssh.get_pool()
    try:
        check = replace(node.target, address=address or node.address)
        state = pool.call(check, "status", timeout=PROBE_TIMEOUT, lane="health")
        if state["mode"] not in ("admin", "member"):
            role = "admin" if node.is_admin else "member"
            pool.call(node.target, "membership", role, shared_address, timeout=PROBE_TIMEOUT, lane="health")
        # A node a rolling reboot takes out stays out until the rollout lets it back.
        want = takes_traffic(node)
        if state["accepting"] != want:
            state = pool.call(node.target, "accepting", "on" if want else "off", timeout=PROBE_TIMEOUT, lane="health")
        return state
    except ssh.NodeError as exc:
        return exc


def down_reason(exc):
    """What the operator needs to act on: why the checks fail, with both fingerprints for a changed key."""
    if isinstance(exc, ssh.HostKeyMismatch):
        return f"host key changed: {exc.detail}; if the node was reinstalled, delete it and add it again"
    if isinstance(exc, ssh.AuthenticationFailed):
        return f"authentication refused: the node no longer accepts the cluster's key ({exc.detail})"
    return f"{exc.reason}: {exc.detail}" if exc.detail else exc.reason


def record(node, report, now):
    healthy_since = node.healthy_since
    if isinstance(report, Exception):
        reason = down_reason(report)
        # Once per cause, not once per second: a new kind of failure is a new line.
        if not node.down_reason.startswith(reason.split(":")[0]):
            events.warning(f"Node {node.number} does not answer its health checks: {reason}", node=node)
        node.failures += 1
        node.healthy_since = None
        node.last_error = str(report)
        node.down_reason = reason
    else:
        rebooted = node.booted_at and report.get("booted_at") != node.booted_at
        if node.failures or not node.healthy_since or rebooted:
            node.healthy_since = now
        node.failures = 0
        node.last_ok_at = now
        node.last_error = ""
        node.down_reason = ""
        node.accepting = report["accepting"]
        node.active_connections = report["active_connections"]
        node.requests_per_second = report.get("requests_per_second", 0)
        node.booted_at = report.get("booted_at", 0)
        node.version = report.get("version", node.version)
        node.schemas = report.get("schemas", node.schemas)
        node.applied_generation = max(node.applied_generation, report.get("generation", 0))
    # The warm-up's start is written only when this answer moves it: an Enable made while the round
    # ran moved it too, and must not be undone by this round's older copy.
    moved = {"healthy_since": node.healthy_since} if node.healthy_since != healthy_since else {}
    Node.objects.filter(pk=node.pk).update(
        **moved,
        checked_at=now,
        failures=node.failures,
        last_error=node.last_error,
        down_reason=node.down_reason,
        last_ok_at=node.last_ok_at,
        accepting=node.accepting,
        active_connections=node.active_connections,
        requests_per_second=node.requests_per_second,
        booted_at=node.booted_at,
        version=node.version,
        schemas=node.schemas,
        applied_generation=node.applied_generation,
    )


_spread = {}  # what the admin node's spreader was last told, to whom and when


def spread(now):
    """Tell the admin node's traffic spreader which nodes take new connections (HAProxy's runtime
    API on the admin node: no reload, open connections untouched). Sent when it changes, and again
    every few seconds for an admin node that restarted and lost it."""
    _, rows, _ = membership.node_rows(now)
    admin = next((row["node"] for row in rows if row["node"].is_admin), None)
    if admin is None:
        return
    told = _spread.get("rotation", {})
    # A node with no news (Checking) keeps what it was last told; one never told takes nothing yet.
    wanted = {
        str(row["node"].number): rotation(row["node"], row["status"]) or told.get(str(row["node"].number), "maint")
        for row in rows
    }
    to = (admin.pk, admin.booted_at)
    if wanted == told and _spread.get("to") == to and now - _spread["at"] < RESEND_ROTATION:
        return
    try:
        ssh.get_pool().call(admin.target, "rotation", json.dumps(wanted), timeout=PROBE_TIMEOUT, lane="health")
    except ssh.NodeError:
        _spread.clear()  # said again next round
        return
    _spread.update(rotation=wanted, to=to, at=now)


def log_transitions(now):
    """Write the seed's log lines for every status change since the last round."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=1).first()
        if cluster is None:
            return
        _announce(cluster)
        has_vs = VirtualService.objects.exists()
        if has_vs and cluster.services_since is None:
            # The first Virtual Service makes every node eligible for rotation only now: each one's
            # 30 s start again from here (once: later services change nothing).
            Node.objects.filter(healthy_since__lt=now).update(healthy_since=now)
            cluster.services_since = now
            Cluster.objects.filter(pk=cluster.pk).update(services_since=now)
        elif not has_vs and cluster.services_since is not None:
            cluster.services_since = None
            Cluster.objects.filter(pk=cluster.pk).update(services_since=None)
        facts = cluster_facts(cluster, has_vs, now)
        nodes = list(Node.objects.select_for_update().filter(removing=False))
        statuses = []
        for node in nodes:
            status = node_status(node, now, cluster.drain_time, has_vs, **facts)
            statuses.append(status)
            if status == Status.CHECKING:
                continue  # no news of it yet: its last known status stands, and nothing is logged
            if status != node.last_status:
                _log_change(node, node.last_status, status)
                Node.objects.filter(pk=node.pk).update(last_status=status)
        if Status.CHECKING in statuses:
            return  # the line waits until every node has been heard from
        disabled = sum(1 for n in nodes if not n.enabled and not n.is_admin)
        summary = cluster_summary(statuses, disabled)
        if summary != cluster.last_summary and nodes:
            events.record(summary, level="warning" if Status.DOWN in statuses else "info")
            Cluster.objects.filter(pk=1).update(last_summary=summary)


def _log_change(node, old, new):
    if new == Status.DOWN:
        events.warning(f"Node {node.number} now dead", node=node)
    elif old in ("", Status.DOWN, Status.DISABLED, Status.DRAINING) and new in (Status.STARTING, Status.UP):
        events.record(f"Node {node.number} now alive", node=node)
    elif new == Status.UP:
        events.record(f"Node {node.number} now in rotation", node=node)

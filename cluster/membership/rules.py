"""Membership: create a cluster, add, enable, disable and delete nodes.

Requests record the operator's intent in the database and return; the
worker then tells the nodes. Every step can run twice without harm.
"""

import http.client
import ipaddress
import json
import re
import ssl
from datetime import timedelta

from auditlog.context import set_actor
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cluster import clock, events, ssh
from cluster.configuration import push
from cluster.configuration import rules as config
from cluster.membership.status import (
    COLOURS,
    TITLES,
    Status,
    cluster_facts,
    drain_left,
    node_status,
    takes_traffic,
    warm_up_left,
)
from cluster.models import Cluster, JoinRequest, Node, VirtualService
from cluster.network import document as network
from nodes.agent.formats import HARDWARE_KEYS, tls_fingerprint
from wui import failpoints
from wui.text import clip, plural, short

JOIN_CODE = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}")
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?")


class Refused(Exception):
    """The operation is not allowed now; the message says why, for the operator."""


# --- creating a cluster ------------------------------------------------------


def check_shared_address(value, own_addresses):
    try:
        address = ipaddress.IPv4Address(str(value).strip())
    except ValueError as exc:
        raise Refused(f"{short(value)} is not an IPv4 address") from exc
    if not network.is_host(address):
        raise Refused(f"{address} cannot be a shared address")
    if str(address) in own_addresses:
        raise Refused(f"{address} is this unit's own address; the shared address must be a different one")
    return str(address)


def create_cluster(shared_address, unit_facts, own_address, actor=None):
    """Make this unit the cluster's admin node (node 1), keeping its configuration."""
    with config.change(actor.user if actor else None) as change:
        cluster = change.cluster
        if cluster.shared_address:
            raise Refused(f"This unit already runs a cluster on {cluster.shared_address}")
        if cluster.mode == Cluster.Mode.HA:
            raise Refused("HA mode is configured on this unit: clustering is unavailable")
        cluster.mode = Cluster.Mode.CLUSTERING
        cluster.shared_address = shared_address
        cluster.created_at = timezone.now()  # for display: not a rule about time
        cluster.save()
        node = Node.objects.create(
            number=1,
            address=own_address,
            ssh_port=unit_facts.get("ssh_port", settings.SSH_PORT),
            ssh_user=unit_facts.get("ssh_user", ""),
            host_key=unit_facts["host_key"],
            facts=unit_facts,
            is_admin=True,
            enabled=True,
            enabled_at=clock.now(),
        )
        if actor:
            events.operator_action(actor, f"Cluster created with shared address {shared_address}", node)
        network.ensure_interfaces()
    return cluster


# --- adding a node -----------------------------------------------------------


def request_join(address, code, fingerprint_text, actor):
    try:
        address = str(ipaddress.IPv4Address(str(address).strip()))
    except ValueError as exc:
        raise Refused(f"{short(address)} is not an IPv4 address") from exc
    code = str(code).strip().upper()
    if not code:
        raise Refused("Enter the join code shown on the node after Add to Cluster")
    if not JOIN_CODE.fullmatch(code):
        raise Refused(f"{short(code)} is not a join code: the unit shows one like ABCD-EF23 after Add to Cluster")
    fingerprint_text = fingerprint_text.strip()
    if fingerprint_text and not FINGERPRINT.fullmatch(fingerprint_text):
        raise Refused(f"{short(fingerprint_text)} is not an SSH host key fingerprint (SHA256:... as the unit shows)")
    _check_can_add(address)
    if JoinRequest.objects.filter(address=address, state=JoinRequest.State.PENDING).exists():
        raise Refused(f"{address} is already being added")
    join = JoinRequest.objects.create(
        address=address,
        code=code,
        fingerprint=fingerprint_text,
        user=actor.user,
        source_address=actor.address,
    )
    events.operator_action(actor, f"Add New Node {address} requested")
    from cluster.tasks import add_node

    add_node.delay_on_commit(join.pk)
    return join


def _check_can_add(address):
    if Node.objects.filter(address=address).exists():
        raise Refused(f"{address} is already a member of this cluster")
    if Node.objects.count() >= settings.LICENSE_MAX_NODES:
        raise Refused(f"The licence allows at most {settings.LICENSE_MAX_NODES} nodes; the cluster has them all")


def lease():
    """How long a worker holds a join or a delete: unfinished after that, its worker died, and the
    health round hands it to another (every step can run twice without harm)."""
    return timedelta(seconds=settings.TASK_LEASE_SECONDS)


def _lease(now):
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def carry_out_join(join_id, now=None):
    """The worker's half of Add New Node, resumable from the request's step; the outcome is on the row."""
    now = now or clock.now()
    claimed = JoinRequest.objects.filter(_lease(now), pk=join_id, state=JoinRequest.State.PENDING)
    if not claimed.update(lease_until=now + lease()):
        return None  # done, refused, or another worker holds it
    join = JoinRequest.objects.get(pk=join_id)
    try:
        # What the worker writes on the operator's behalf is theirs in the audit log, with their address.
        with set_actor(join.user, remote_addr=join.source_address):
            node = _join(join)
    except Refused as exc:
        _undo_join(join)
        JoinRequest.objects.filter(pk=join.pk).update(
            state=JoinRequest.State.REFUSED, message=clip(str(exc), 500), code="", lease_until=None
        )
        events.warning(f"Adding {join.address} refused: {exc}")
        return None
    JoinRequest.objects.filter(pk=join.pk).update(
        state=JoinRequest.State.DONE, message=f"Added as node {node.number}", code="", lease_until=None
    )
    return node


def _join(join):
    """Check, accept, record, finish: each step is skipped when the row says it was done."""
    cluster = Cluster.get()
    if join.step == JoinRequest.Step.CHECKING:
        _check_can_add(join.address)
        offered, presented = post_to_node(join.address, {"code": join.code, "check": True})
        _pin_certificate(join, offered, presented)
        if join.fingerprint and join.fingerprint != ssh.fingerprint(offered["host_key"]):
            raise Refused(
                f"the node's host key fingerprint is {ssh.fingerprint(offered['host_key'])}, "
                f"not {short(join.fingerprint)} as entered: the host key changed"
            )
        differences = hardware_differences(offered)
        if differences:
            raise Refused("the hardware differs from the cluster's: " + "; ".join(differences))
        failpoints.reached("join.before_accept")
    # Accepting again with the same code and key answers the same (the unit keeps its word while
    # it is joining), so a resumed join asks again instead of trusting what it had not recorded.
    if join.step in (JoinRequest.Step.CHECKING, JoinRequest.Step.ACCEPTED):
        accepted = _accept(join, cluster)
        failpoints.reached("join.after_accept")
        node = _record(join, accepted)
        failpoints.reached("join.after_record")
    else:
        node = join.node
        if node is None:
            raise Refused("the node's row was removed while it was being added")
    _renew(join)
    _finish(node, cluster)
    return node


def _renew(join):
    """Each step renews the lease: a join as slow as its steps allow never looks abandoned."""
    JoinRequest.objects.filter(pk=join.pk).update(lease_until=clock.now() + lease())


def _accept(join, cluster):
    _renew(join)
    payload = {"code": join.code, "cluster_key": ssh.cluster_public_key(), "shared_address": cluster.shared_address}
    accepted, _ = post_to_node(join.address, payload, pinned=join.tls_fingerprint)
    if join.fingerprint and join.fingerprint != ssh.fingerprint(accepted["host_key"]):
        raise Refused("the node's host key fingerprint changed while joining")
    JoinRequest.objects.filter(pk=join.pk).update(step=JoinRequest.Step.ACCEPTED)
    join.step = JoinRequest.Step.ACCEPTED
    return accepted


def _record(join, accepted):
    _renew(join)
    with config.change(join.user):
        _check_can_add(join.address)
        node = Node.objects.create(
            number=_free_number(),
            address=join.address,
            ssh_port=accepted.get("ssh_port") or settings.SSH_PORT,
            ssh_user=accepted["ssh_user"],
            host_key=accepted["host_key"],
            tls_fingerprint=join.tls_fingerprint,
            facts=accepted,
            version=accepted.get("version", ""),
        )
        JoinRequest.objects.filter(pk=join.pk).update(step=JoinRequest.Step.RECORDED, node=node)
        join.step, join.node = JoinRequest.Step.RECORDED, node
        events.record(f"Node {node.number} ({node.address}) added by {join.user or 'system'}: Disabled", node=node)
        network.ensure_interfaces()
    return node


def _finish(node, cluster):
    """Tell the unit it is a member, give it the configuration and reboot it into cluster mode."""
    try:
        pool = ssh.get_pool()
        pool.call(node.target, "membership", "member", cluster.shared_address)
        push.push([node])
        pool.call(node.target, "reboot")  # finishes the conversion to cluster mode
    except ssh.HostKeyMismatch as exc:
        with config.change():
            Node.objects.filter(pk=node.pk).delete()
        raise Refused(f"the host key fingerprint changed: {exc.detail}") from exc
    except ssh.NodeError as exc:
        # The health round tells a member it is one as soon as it answers.
        events.warning(f"Node {node.number} added but not yet reachable over SSH: {exc}", node=node)


def _undo_join(join):
    """A refused join leaves the unit as it was: it forgets the cluster's key (it would by itself, later)."""
    if join.step != JoinRequest.Step.ACCEPTED:
        return
    try:
        post_to_node(join.address, {"code": join.code, "abort": True}, pinned=join.tls_fingerprint)
    except Refused as exc:
        events.warning(
            f"Adding {join.address}: the unit did not confirm that it forgot the cluster's key ({exc}); "
            "it does so by itself when the join is not completed within 10 minutes"
        )


def resume_stale(now):
    """Hand joins and deletes whose worker died to a worker again (the health round calls this)."""
    from cluster.tasks import add_node, remove_node

    stale = JoinRequest.objects.filter(state=JoinRequest.State.PENDING).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, created_at__lt=now - lease())
    )
    for pk in stale.values_list("pk", flat=True):
        add_node.delay(pk)
    lost = Node.objects.filter(removing=True).filter(Q(removing_until__lt=now) | Q(removing_until__isnull=True))
    for pk in lost.values_list("pk", flat=True):
        remove_node.delay(pk)


def _free_number():
    used = set(Node.objects.values_list("number", flat=True))
    return next(n for n in range(1, len(used) + 2) if n not in used)


def hardware_differences(facts):
    admin = Node.objects.filter(is_admin=True).first()
    if admin is None:
        return []
    labels = {"cpu_count": "CPUs", "memory_mib": "memory (MiB)", "disk_gib": "disk (GiB)", "virtual": "virtual"}
    return [
        f"{labels[k]}: cluster {admin.facts.get(k)}, node {facts.get(k)}"
        for k in HARDWARE_KEYS
        if admin.facts.get(k) != facts.get(k)
    ]


def _pin_certificate(join, offered, presented):
    """The unit names the certificate its WUI serves (its answer is the one-time code's: the code
    authenticates it); the connection must have presented that very certificate, and it is pinned
    for the rest of the join and on the node's row, as the SSH host key is."""
    said = offered.get("tls_fingerprint")
    if not said:
        raise Refused("the unit did not say which certificate its WUI serves: update its software first")
    if said != presented:
        raise Refused(
            f"the certificate presented at {join.address} ({presented}) is not the one the unit serves "
            f"({said}): something between the cluster and the unit answered in its place"
        )
    if join.tls_fingerprint and join.tls_fingerprint != presented:
        raise Refused(f"the unit's certificate changed while joining: pinned {join.tls_fingerprint}, now {presented}")
    JoinRequest.objects.filter(pk=join.pk).update(tls_fingerprint=presented)
    join.tls_fingerprint = presented


def post_to_node(address, payload, pinned=""):
    """Call a unit's join endpoint (its own WUI, over HTTPS), which checks the one-time code.

    Returns (the answer, the fingerprint of the certificate the unit presented). The unit's
    certificate is its own, signed by no one the cluster knows: before it is pinned the one-time
    code is what authenticates the answer; once pinned (``pinned``), a different certificate is
    refused with both fingerprints and nothing is sent.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # checked against the pin below, before the request is sent
    timeout = settings.SSH_CONNECT_TIMEOUT + 2
    connection = http.client.HTTPSConnection(address, settings.NODE_WUI_PORT, timeout=timeout, context=context)
    try:
        connection.connect()
        presented = tls_fingerprint(connection.sock.getpeercert(binary_form=True))
        if pinned and presented != pinned:
            raise Refused(
                f"the unit's WUI certificate changed: pinned {pinned}, presented {presented}; nothing was sent to it"
            )
        connection.request("POST", "/cluster/join", json.dumps(payload), {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Refused(f"could not reach the unit at {address}: {exc}") from exc
    finally:
        connection.close()
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise Refused(f"the unit at {address} answered {response.status} {response.reason}, not JSON") from exc
    if response.status >= 400:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise Refused(reason or f"{response.status} {response.reason}")
    return answer, presented


# --- enable, disable, delete -------------------------------------------------


def _locked(node_id):
    node = Node.objects.select_for_update().filter(pk=node_id).first()
    if node is None:
        raise Refused("That node is no longer in the cluster")
    if node.removing:
        raise Refused(f"Node {node.number} is being deleted")
    return node


def enable(node_id, actor):
    with config.change(actor.user):
        node = _locked(node_id)
        if node.enabled:
            raise Refused(f"Node {node.number} is already enabled")
        node.enabled, node.enabled_at, node.disabled_at = True, clock.now(), None
        node.save(update_fields=["enabled", "enabled_at", "disabled_at"])
        Node.objects.filter(pk=node.pk, healthy_since__isnull=False).update(healthy_since=node.enabled_at)
        events.operator_action(actor, f"Node {node.number} enabled", node)
        _after_commit_sync(node)
    return node


def disable(node_id, actor):
    with config.change(actor.user) as change:
        node = _locked(node_id)
        if not node.enabled:
            raise Refused(f"Node {node.number} is already disabled")
        node.enabled, node.disabled_at = False, clock.now()
        node.save(update_fields=["enabled", "disabled_at"])
        events.operator_action(actor, f"Node {node.number} disabled (draining for {change.cluster.drain_time} s)", node)
        _after_commit_sync(node)
    return node


def _after_commit_sync(node):
    from cluster.tasks import sync_node

    sync_node.delay_on_commit(node.pk)


def request_delete(node_id, actor, now=None):
    with transaction.atomic():
        node = _locked(node_id)
        if node.is_admin:
            raise Refused("The admin node holds the shared address and cannot be deleted")
        status = node_status(node, now or clock.now(), Cluster.get().drain_time, VirtualService.objects.exists())
        # The open connections are the health round's last count; the worker asks the node itself
        # again before it leaves.
        handles = f"still handles {plural(node.active_connections, 'open connection')}"
        if status != Status.DISABLED or node.enabled:
            raise Refused(
                f"Node {node.number} is {status.label}{f' and {handles}' if node.active_connections else ''}: "
                "only a Disabled node can be deleted (Disable it and wait for the drain to finish)"
            )
        if node.active_connections:
            raise Refused(f"Node {node.number} {handles}: it can be deleted once they have closed")
        node.removing, node.removing_by, node.removing_from = True, actor.user, actor.address
        node.save(update_fields=["removing", "removing_by", "removing_from"])
        events.operator_action(actor, f"Node {node.number} delete requested", node)
        from cluster.tasks import remove_node

        remove_node.delay_on_commit(node.pk)
    return node


def carry_out_delete(node_id, now=None):
    """The worker's half of Delete; a worker that dies half way leaves it to the next one."""
    now = now or clock.now()
    claimed = Node.objects.filter(pk=node_id, removing=True).filter(
        Q(removing_until__isnull=True) | Q(removing_until__lt=now)
    )
    if not claimed.update(removing_until=now + lease()):
        return
    node = Node.objects.get(pk=node_id)
    with set_actor(node.removing_by, remote_addr=node.removing_from):
        _delete(node)


def _delete(node):
    pool = ssh.get_pool()
    try:
        state = pool.call(node.target, "status")
        if state.get("mode") != "standalone" and state.get("active_connections"):
            Node.objects.filter(pk=node.pk).update(
                removing=False, removing_until=None, active_connections=state["active_connections"]
            )
            events.warning(
                f"Node {node.number} cannot be deleted: it still handles "
                f"{plural(state['active_connections'], 'open connection')}",
                node=node,
            )
            return
        failpoints.reached("delete.before_leave")
        Node.objects.filter(pk=node.pk).update(removing_until=clock.now() + lease())
        pool.call(node.target, "leave-cluster")
        failpoints.reached("delete.after_leave")
        pool.call(node.target, "reboot")
    except ssh.AuthenticationFailed:
        pass  # it already forgot the cluster's key: it left before the last worker died
    except ssh.NodeError as exc:
        events.warning(
            f"Node {node.number} did not answer while being deleted ({exc}); "
            "it is removed from the cluster all the same",
            node=node,
        )
    pool.drop(node.target)
    with config.change(node.removing_by):
        if Node.objects.filter(pk=node.pk).delete()[0]:
            who = f" by {node.removing_by.get_username()}" if node.removing_by else ""
            events.record(f"Node {node.number} ({node.address}) deleted{who}: it is now a standalone unit")


def sync_node(node_id):
    """Tell a node what the operator wants: take new connections or not."""
    node = Node.objects.filter(pk=node_id).first()
    if node is None:
        return
    want = "on" if takes_traffic(node) else "off"
    try:
        state = ssh.get_pool().call(node.target, "accepting", want)
    except ssh.NodeError as exc:
        Node.objects.filter(pk=node.pk).update(last_error=str(exc))
        return
    Node.objects.filter(pk=node.pk).update(accepting=state["accepting"], active_connections=state["active_connections"])


def resync(node_id, actor):
    """Resync: send the whole newest configuration to one node again, whatever it reports."""
    with transaction.atomic():
        node = _locked(node_id)
        events.operator_action(actor, f"Node {node.number} resync requested", node)
        from cluster.tasks import resync_node

        resync_node.delay_on_commit(node.pk)
    return node


# --- cluster parameters ------------------------------------------------------


def choose_mode(mode, actor):
    """HA and Clustering: the mode is chosen once; the other one is then unavailable."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get_or_create(pk=1)[0]
        if cluster.mode != Cluster.Mode.NONE:
            raise Refused(f"{cluster.get_mode_display()} is already configured; the other mode is unavailable.")
        cluster.mode = mode
        cluster.save(update_fields=["mode"])
        events.operator_action(actor, f"{cluster.get_mode_display()} selected under HA and Clustering")


def set_parameter(field, value, actor):
    labels = {"virtual_id": "Cluster Virtual ID", "drain_time": "Node Drain Time"}
    with config.change(actor.user) as change:
        cluster = change.cluster
        old = getattr(cluster, field)
        setattr(cluster, field, value)
        cluster.save(update_fields=[field])
        events.operator_action(actor, f"{labels[field]} changed from {old} to {value}")
    return cluster


def node_rows(now=None):
    """Every node with its status as Cluster Control shows it: the one place a row's status is derived."""
    now = now or clock.now()
    cluster = Cluster.get()
    has_vs = VirtualService.objects.exists()
    facts = cluster_facts(cluster, has_vs, now)
    nodes = list(Node.objects.all())
    # The seed's bracketed address: the node's address on the interface port its checks go over.
    ports = network.check_addresses(nodes)
    rows = []
    for node in nodes:
        status = Status.DISABLED if node.removing else node_status(node, now, cluster.drain_time, has_vs, **facts)
        left = warm_up_left(node, now, facts["services_since"]) if status == Status.STARTING else None
        drain = drain_left(node, now, cluster.drain_time) if status == Status.DRAINING else None
        rows.append(
            {
                "node": node,
                "status": status,
                "colour": COLOURS[status],
                "title": TITLES.get(status, ""),
                "deleting": node.removing,
                "warm_up_left": left,
                "drain_left": drain,
                "interface_address": ports[node.pk] if ports[node.pk] != node.address else None,
            }
        )
    return cluster, rows, has_vs


def traffic(rows):
    """The cluster's traffic from ``node_rows``: what the nodes last reported (the Down ones report nothing)."""
    counted = [r["node"] for r in rows if r["status"] != Status.DOWN]
    return {
        "connections": sum(n.active_connections for n in counted),
        "requests_per_second": sum(n.requests_per_second for n in counted),
    }

"""Virtual Services > View/Modify Services: forms, the cluster's restrictions (seed 2.2) and thin views.

Every change locks the cluster row first: it serialises configuration changes (so two operators
cannot both pass a check that only one of them may pass, nor both take the next generation
number) and fixes whether the restrictions apply for the whole change.
"""

import ipaddress

from django.db import IntegrityError, transaction
from django.shortcuts import get_object_or_404

from cluster import events
from cluster.configuration import rules as config
from cluster.models import Cluster, Node, RealServer, VirtualService
from cluster.virtual_services.forms import RealServerForm, VirtualServiceForm, reasons


class Refused(Exception):
    """Nothing was saved; ``reasons`` says why, one sentence per field."""

    def __init__(self, reasons, form=None):
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)
        self.form = form


# --- the cluster's restrictions -------------------------------------------------


def clustering():
    cluster = Cluster.get()
    return cluster.mode == Cluster.Mode.CLUSTERING and bool(cluster.shared_address)


def _interfaces(facts):
    interfaces = facts.get("interfaces") if isinstance(facts, dict) else None
    return [i for i in interfaces or [] if isinstance(i, dict)]


def node_networks():
    """Every IPv4 network a node interface is on, as the nodes reported them."""
    networks = set()
    for facts in Node.objects.values_list("facts", flat=True):
        for interface in _interfaces(facts):
            for address in interface.get("addresses") or []:
                try:
                    networks.add(ipaddress.IPv4Interface(address).network)
                except (ValueError, TypeError):
                    continue  # IPv6 or damaged facts: no IPv4 subnet to offer
    return sorted(networks)


def primary_interface():
    admin = Node.objects.filter(is_admin=True).first()
    names = [i["name"] for i in _interfaces(admin.facts if admin else {}) if i.get("name")]
    return names[0] if names else "eth0"


def cluster_violations(vs, real_servers):
    """Every setting of this service (with these real servers) that a cluster cannot run; empty if none."""
    problems = []
    if int(vs.layer) != VirtualService.Layer.L7:
        problems.append("Layer: in a cluster all Virtual Services must operate at Layer 7")
    if vs.transparency:
        problems.append("Transparency cannot be enabled in a cluster")
    if not vs.subnet_originating:
        problems.append("Subnet Originating Requests must be enabled in a cluster")
    primary = primary_interface()
    if vs.interface != primary:
        problems.append(
            f"Interface {vs.interface}: Virtual Services are only possible on the primary interface ({primary}) "
            "in a cluster"
        )
    return problems + _non_local(real_servers)


def _non_local(real_servers):
    networks = node_networks()
    where = ", ".join(map(str, networks)) or "no node has reported an interface address"
    return [
        f"Real server {rs.address} is not local: in a cluster each real server must be in the subnet of a node "
        f"interface ({where})"
        for rs in real_servers
        if not any(ipaddress.IPv4Address(rs.address) in network for network in networks)
    ]


def incompatible_settings():
    """Every Virtual Service setting that a cluster refuses, named by service (for Backup/Restore)."""
    services = sorted(VirtualService.objects.prefetch_related("real_servers"), key=VirtualService.sort_key)
    return [f"Virtual Service {vs}: {p}" for vs in services for p in cluster_violations(vs, vs.real_servers.all())]


def _enforce(vs, real_servers, form):
    if clustering() and (problems := cluster_violations(vs, real_servers)):
        raise Refused(problems, form)


# --- changes -------------------------------------------------------------------


def _locked_service(pk):
    return get_object_or_404(VirtualService.objects.select_for_update(), pk=pk)


def _valid(form):
    if not form.is_valid():
        raise Refused(reasons(form), form)
    return form.save(commit=False)


def _save(row, form):
    """Save; a duplicate that slipped past the form (another database writer) is refused, not a 500."""
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as exc:
        raise Refused([f"{row.address}:{row.port} is already in use; reload the page and try again"], form) from exc


def save_service(actor, data, pk=None):
    """Create (no pk) or change a Virtual Service; Refused means nothing was saved."""
    with config.change(actor.user):
        form = VirtualServiceForm(data, instance=_locked_service(pk) if pk else None)
        vs = _valid(form)
        _enforce(vs, list(vs.real_servers.all()) if pk else [], form)
        if pk and not form.has_changed():
            return vs, False
        _save(vs, form)
        events.operator_action(actor, _service_sentence(vs, form, pk))
    return vs, True


def _service_sentence(vs, form, pk):
    if not pk:
        return f"Virtual Service {vs} created"
    return f"Virtual Service {vs} changed ({', '.join(str(form.fields[f].label) for f in form.changed_data)})"


def delete_service(actor, pk):
    with config.change(actor.user):
        vs = _locked_service(pk)
        sentence = f"Virtual Service {vs} deleted"
        vs.delete()
        events.operator_action(actor, sentence)
    return sentence


def save_real_server(actor, data, vs_pk, rs_pk=None):
    """Add (no rs_pk) or change one real server of a service; Refused means nothing was saved."""
    with config.change(actor.user):
        vs = _locked_service(vs_pk)
        row = get_object_or_404(vs.real_servers, pk=rs_pk) if rs_pk else RealServer(virtual_service=vs)
        before = _describe(row) if rs_pk else None
        form = RealServerForm(data, instance=row)
        rs = _valid(form)
        _enforce(vs, [*(r for r in vs.real_servers.all() if r.pk != rs.pk), rs], form)
        if rs_pk and not form.has_changed():
            return vs, rs, False
        _save(rs, form)
        after = _describe(rs)
        sentence = f"changed from {before} to {after}" if before else f"{after} added"
        events.operator_action(actor, f"Virtual Service {vs}: real server {sentence}")
    return vs, rs, True


def _describe(rs):
    return f"{rs} (weight {rs.weight}, {'enabled' if rs.enabled else 'disabled'})"


def delete_real_server(actor, vs_pk, rs_pk):
    with config.change(actor.user):
        vs = _locked_service(vs_pk)
        rs = get_object_or_404(vs.real_servers, pk=rs_pk)
        rs.delete()
        events.operator_action(actor, f"Virtual Service {vs}: real server {rs} removed")
    return vs, rs

"""Network Setup on the shared address: the interfaces every node has, and each node's address on them.

A change is checked in full before anything is written; a refused change
leaves no trace (no event, no configuration generation). An accepted one is
recorded as an operator action and committed as a new generation in the same
transaction.
"""

import ipaddress
from collections import defaultdict

from django import forms

from cluster.models import Cluster, Interface, Node, NodeInterface
from nodes.agent.formats import MTU
from wui.text import short

CHECKS_REQUIRED = "At least one interface must be used for cluster checks"
MAX_ADDITIONAL = 64


class Refused(Exception):
    """A change that breaks a rule: shown to the operator, nothing written."""


# --- address rules ------------------------------------------------------------


def parse_interface_address(value, label):
    """An IPv4 "address/prefix" in canonical form, or a ValidationError that names the field."""
    text = (value or "").strip()
    try:
        interface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise forms.ValidationError(
            f"{label}: {short(text)} is not an IPv4 address/prefix; enter one such as 10.0.0.5/24"
        ) from None
    if "/" not in text:
        raise forms.ValidationError(f"{label}: {text} has no prefix; enter address/prefix such as {text}/24")
    network = interface.network
    if network.prefixlen == 0:
        raise forms.ValidationError(f"{label}: the prefix must be from 1 to 32")
    _check_host(interface.ip, label)
    if network.prefixlen <= 30 and interface.ip in (network.network_address, network.broadcast_address):
        raise forms.ValidationError(f"{label}: {interface.ip} is the network or broadcast address of {network}")
    return interface.with_prefixlen


def parse_address(value, label):
    """A plain IPv4 host address (no prefix), or a ValidationError that names the field."""
    text = (value or "").strip()
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise forms.ValidationError(
            f"{label}: {short(text)} is not an IPv4 address; enter one such as 10.0.0.90"
        ) from None
    _check_host(address, label)
    return str(address)


def is_host(address):
    """Whether an IPv4 address can be a host's: not 0.0.0.0, not multicast, not the limited broadcast."""
    address = ipaddress.IPv4Address(address)
    return not (address.is_multicast or address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255"))


def _check_host(address, label):
    if not is_host(address):
        raise forms.ValidationError(f"{label}: {address} cannot be a host's address")


def host(address):
    return address.split("/")[0]


def _uses():
    """Every address the cluster configures, with a key naming its owner and a description for the operator."""
    for side in NodeInterface.objects.select_related("node", "interface").exclude(address=""):
        yield ("side", side.pk), host(side.address), f"node {side.node.number}'s address on {side.interface.name}"
    for node in Node.objects.all():
        yield ("node", node.pk), node.address, f"node {node.number}'s address"
    for interface in Interface.objects.all():
        if shared := interface.cluster_shared_address:
            yield ("shared", interface.pk), shared, f"the Cluster Shared IP address of {interface.name}"
        for address in interface.additional_addresses:
            yield ("additional", address), host(address), f"an additional address of {interface.name}"


def check_unique(wanted, replacing=()):
    """Refuse an address another node or interface already has.

    wanted maps each address to (the field's label, the node it is for or None);
    a node may keep its own primary address on an interface.
    """
    for key, address, what in _uses():
        if address not in wanted or key in replacing:
            continue
        label, node_pk = wanted[address]
        if key != ("node", node_pk):
            raise Refused(f"{label}: {address} is already {what}")


# --- the interfaces, from the nodes' facts -------------------------------------------


def ensure_interfaces():
    """Create the interfaces from the admin node's facts once, and each node's side from its own facts."""
    nodes = list(Node.objects.all())
    if not Interface.objects.exists():
        _create_interfaces(nodes)
    _add_sides(nodes)


def _create_interfaces(nodes):
    admin = next((n for n in nodes if n.is_admin), nodes[0] if nodes else None)
    if admin is None:
        return
    shared = Cluster.get().shared_address
    # ignore_conflicts: two first visits at once must not fail; the second simply finds them.
    Interface.objects.bulk_create(
        [_new_interface(i, facts, shared) for i, facts in enumerate(admin.facts.get("interfaces", []))],
        ignore_conflicts=True,
    )


def _new_interface(index, facts, shared):
    first = index == 0
    mtu = facts.get("mtu")
    return Interface(
        index=index,
        name=facts["name"],
        cluster_shared_address=shared if first else None,
        use_for_cluster_checks=first,
        use_for_cluster_updates=first,
        use_for_geo=first,
        # A loopback device reports 65536, which no Ethernet link takes.
        mtu=mtu if mtu in MTU else MTU.default,
    )


def _add_sides(nodes):
    interfaces = list(Interface.objects.all())
    existing = set(NodeInterface.objects.values_list("node_id", "interface_id"))
    missing = [
        _new_side(node, interface)
        for node in nodes
        for interface in interfaces
        if (node.pk, interface.pk) not in existing
    ]
    if missing:
        NodeInterface.objects.bulk_create(missing, ignore_conflicts=True)


def _new_side(node, interface):
    facts = _facts_of(node, interface.name)
    addresses = facts.get("addresses") or [""]
    return NodeInterface(
        node=node,
        interface=interface,
        address=addresses[0],
        use_for_default_gateway=facts.get("use_for_default_gateway", interface.index == 0),
    )


def _facts_of(node, name):
    return next((f for f in node.facts.get("interfaces", []) if f.get("name") == name), {})


def link_status(interface):
    """Speed and duplex as the admin node reports them, in the seed's words."""
    admin = Node.objects.filter(is_admin=True).first() or Node.objects.first()
    facts = _facts_of(admin, interface.name) if admin else {}
    speed = f"{facts['speed_mbps']}Mb/s" if facts.get("speed_mbps") else "unknown"
    duplex = facts.get("duplex")
    return f"Speed: {speed}, " + (f"{duplex.title()} Duplex" if duplex in ("full", "half") else "Duplex unknown")


# --- what the rest of the cluster reads -------------------------------------------


def network_document():
    """The whole network configuration, ordered so that equal settings give an equal document."""
    nodes = defaultdict(list)
    for side in NodeInterface.objects.select_related("node").order_by("interface__index", "node__number"):
        nodes[side.interface_id].append({"id": side.node.number, "address": side.address or None})
    return {
        "interfaces": [
            {
                "index": i.index,
                "name": i.name,
                "cluster_shared_address": i.cluster_shared_address,
                "use_for_cluster_checks": i.use_for_cluster_checks,
                "use_for_cluster_updates": i.use_for_cluster_updates,
                "use_for_geo": i.use_for_geo,
                "mtu": i.mtu,
                "link_mode": i.link_mode,
                "additional_addresses": sorted(i.additional_addresses, key=ipaddress.IPv4Interface),
                "nodes": nodes[i.pk],
            }
            for i in Interface.objects.order_by("index")
        ]
    }


def _addresses_for(node, flag):
    sides = NodeInterface.objects.filter(node=node, **{f"interface__{flag}": True}).exclude(address="")
    return [host(s.address) for s in sides.order_by("interface__index")]


def check_address(node):
    """Where to health-check and SSH a node: its address on the first "Use for Cluster checks" interface."""
    addresses = _addresses_for(node, "use_for_cluster_checks")
    return addresses[0] if addresses else node.address


def check_addresses(nodes):
    """check_address() for many nodes in one query (the health round runs every second): {node pk: address}."""
    chosen = {}
    sides = NodeInterface.objects.filter(node__in=nodes, interface__use_for_cluster_checks=True).exclude(address="")
    for node_id, address in sides.order_by("-interface__index").values_list("node_id", "address"):
        chosen[node_id] = host(address)  # the lowest index is written last and wins
    return {node.pk: chosen.get(node.pk, node.address) for node in nodes}


def update_addresses(node):
    """Where to send a node configuration updates: its addresses on the "Use for Cluster Updates" interfaces."""
    return _addresses_for(node, "use_for_cluster_updates") or [node.address]

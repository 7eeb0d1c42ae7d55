"""Network Setup on the shared address: the interfaces every node has, and each node's address on them.

A change is checked in full before anything is written; a refused change
leaves no trace (no event, no configuration generation). An accepted one is
recorded as an operator action and committed as a new generation in the same
transaction.
"""

import ipaddress
from collections import defaultdict

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import config, events
from cluster.forms import ranged
from cluster.models import Cluster, Interface, Node, NodeInterface
from wui.text import short

CHECKS_REQUIRED = "At least one interface must be used for cluster checks"
MAX_ADDITIONAL = 64
DEFAULT_MTU = 1500


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


def _check_host(address, label):
    if address.is_multicast or address.is_unspecified or address == ipaddress.IPv4Address("255.255.255.255"):
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
        mtu=mtu if isinstance(mtu, int) and 576 <= mtu <= 9216 else DEFAULT_MTU,
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


# --- forms -------------------------------------------------------------------


class InterfaceForm(forms.Form):
    """A form for one interface's setting, shown filled in with what the interface has now."""

    def __init__(self, *args, interface, **kwargs):
        self.interface = interface
        kwargs.setdefault("initial", {name: getattr(interface, name, None) for name in self.base_fields})
        super().__init__(*args, **kwargs)


class InterfaceAddressField(forms.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=49, **kwargs)
        self.error_messages["max_length"] = f"{kwargs['label']}: enter an IPv4 address/prefix such as 10.0.0.5/24"

    def clean(self, value):
        value = super().clean(value)
        return parse_interface_address(value, self.label) if value else ""


class AddressesForm(InterfaceForm):
    """One address per node; a blank one means the node has no address on this interface."""

    def __init__(self, *args, interface, **kwargs):
        super().__init__(*args, interface=interface, **kwargs)
        self.sides = list(interface.node_interfaces.select_related("node").order_by("node__number"))
        for side in self.sides:
            self.fields[f"node_{side.node.number}"] = InterfaceAddressField(
                label=f"Interface Address for node {side.node.number}", required=False, initial=side.address
            )

    def clean(self):
        seen = {}
        for name, value in (self.cleaned_data or {}).items():
            if value and host(value) in seen:
                raise forms.ValidationError(
                    f"{self.fields[name].label}: {host(value)} is also given to {seen[host(value)]}"
                )
            seen[host(value)] = self.fields[name].label.removeprefix("Interface Address for ")
        return self.cleaned_data


class SharedAddressForm(InterfaceForm):
    cluster_shared_address = forms.CharField(label="Cluster Shared IP address", max_length=15, required=False)

    def clean_cluster_shared_address(self):
        value = self.cleaned_data["cluster_shared_address"].strip()
        return parse_address(value, "Cluster Shared IP address") if value else None


class OptionsForm(InterfaceForm):
    use_for_cluster_checks = forms.BooleanField(label="Use for Cluster checks", required=False)
    use_for_cluster_updates = forms.BooleanField(label="Use for Cluster Updates", required=False)
    use_for_geo = forms.BooleanField(label="Use for GEO Responses and Requests", required=False)


LINK_MESSAGE = "Link Status: choose Automatic or one of the listed speeds and duplex settings"


class LinkForm(InterfaceForm):
    link_mode = forms.ChoiceField(
        label="Link Status",
        choices=Interface.LinkMode.choices,
        error_messages={"invalid_choice": LINK_MESSAGE, "required": LINK_MESSAGE},
    )


class MtuForm(InterfaceForm):
    mtu = ranged("MTU", 576, 9216)


class AddAddressForm(InterfaceForm):
    address = InterfaceAddressField(
        label="Additional addresses",
        error_messages={"required": "Additional addresses: enter an IPv4 address/prefix such as 10.0.0.5/24"},
    )


class RemoveAddressForm(InterfaceForm):
    address = forms.CharField(label="Additional addresses", max_length=49)

    def clean_address(self):
        value = self.cleaned_data["address"]
        if value not in self.interface.additional_addresses:
            raise forms.ValidationError(f"Additional addresses: {value} is not an additional address of this interface")
        return value


# --- changes: each returns what changed, in words, or raises Refused --------------------------


def set_addresses(interface, data, form):
    wanted = {}
    for side in form.sides:
        if value := data[f"node_{side.node.number}"]:
            wanted[host(value)] = (form.fields[f"node_{side.node.number}"].label, side.node_id)
    check_unique(wanted, replacing={("side", side.pk) for side in form.sides})
    changed = []
    for side in form.sides:
        value = data[f"node_{side.node.number}"]
        if value != side.address:
            changed.append(f"node {side.node.number} {side.address or '(none)'} -> {value or '(none)'}")
            side.address = value
            side.save(update_fields=["address"])
    return "Interface Address " + (", ".join(changed) if changed else "unchanged")


def set_shared(interface, data, form):
    value = data["cluster_shared_address"]
    if value:
        check_unique({value: ("Cluster Shared IP address", None)}, replacing={("shared", interface.pk)})
    interface.cluster_shared_address = value
    interface.save(update_fields=["cluster_shared_address"])
    return f"Cluster Shared IP address set to {value}" if value else "Cluster Shared IP address cleared"


def set_options(interface, data, form):
    others = Interface.objects.exclude(pk=interface.pk).filter(use_for_cluster_checks=True)
    if not data["use_for_cluster_checks"] and not others.exists():
        raise Refused(CHECKS_REQUIRED)
    for name in OptionsForm.base_fields:
        setattr(interface, name, data[name])
    interface.save(update_fields=list(OptionsForm.base_fields))
    return ", ".join(f"{f.label} {'on' if data[n] else 'off'}" for n, f in OptionsForm.base_fields.items())


def force_link(interface, data, form):
    interface.link_mode = data["link_mode"]
    interface.save(update_fields=["link_mode"])
    return f"Link Status set to {interface.get_link_mode_display()}"


def set_mtu(interface, data, form):
    old, interface.mtu = interface.mtu, data["mtu"]
    interface.save(update_fields=["mtu"])
    return f"MTU changed from {old} to {interface.mtu}"


def add_address(interface, data, form):
    value = data["address"]
    if len(interface.additional_addresses) >= MAX_ADDITIONAL:
        raise Refused(f"Additional addresses: at most {MAX_ADDITIONAL} per interface")
    check_unique({host(value): ("Additional addresses", None)})
    interface.additional_addresses = sorted([*interface.additional_addresses, value], key=ipaddress.IPv4Interface)
    interface.save(update_fields=["additional_addresses"])
    return f"additional address {value} added"


def remove_address(interface, data, form):
    interface.additional_addresses = [a for a in interface.additional_addresses if a != data["address"]]
    interface.save(update_fields=["additional_addresses"])
    return f"additional address {data['address']} removed"


CHANGES = {
    "address": (AddressesForm, set_addresses),
    "shared": (SharedAddressForm, set_shared),
    "options": (OptionsForm, set_options),
    "link": (LinkForm, force_link),
    "mtu": (MtuForm, set_mtu),
    "add_address": (AddAddressForm, add_address),
    "remove_address": (RemoveAddressForm, remove_address),
}


def apply_change(action, interface, post, request):
    """Validate, then change, record and commit in one transaction; returns what changed."""
    form_class, change = CHANGES[action]
    with config.change(request.user):
        # All interfaces, in one order: two operators unticking "Use for Cluster checks" on two
        # interfaces at once must not both see the other still ticked.
        locked = {i.pk: i for i in Interface.objects.select_for_update().order_by("index")}
        current = locked[interface.pk]
        form = form_class(post, interface=current)
        if not form.is_valid():
            raise Refused(first_error(form))
        text = change(current, form.cleaned_data, form)
        events.operator_action(request, f"Network Setup: {current.name} {text}")
    return text


def first_error(form):
    return next(iter(form.errors.values()))[0]


# --- views ---------------------------------------------------------------------


def network_setup(request):
    ensure_interfaces()
    admin = Node.objects.filter(is_admin=True).first()
    rows = [
        {"interface": i, "address": _admin_address(i, admin)}
        for i in Interface.objects.order_by("index").prefetch_related("node_interfaces")
    ]
    return render(request, "cluster/network.html", {"rows": rows, "admin": admin})


def _admin_address(interface, admin):
    return next((s.address for s in interface.node_interfaces.all() if admin and s.node_id == admin.pk), "")


def network_interface(request, index):
    ensure_interfaces()
    interface = get_object_or_404(Interface, index=index)
    return render(request, "cluster/network_interface.html", _context(interface))


def _context(interface, **bound):
    forms_ = {name: form_class(interface=interface) for name, (form_class, _) in CHANGES.items()}
    forms_.update(bound)
    addresses = forms_["address"]
    return {
        "interface": interface,
        "link_status": link_status(interface),
        "forms": forms_,
        "address_rows": [{"side": s, "field": addresses[f"node_{s.node.number}"]} for s in addresses.sides],
        "link_choices": Interface.LinkMode.choices,
    }


@require_POST
def network_change(request, index, action):
    if action not in CHANGES:
        raise Http404("No such network setting")
    ensure_interfaces()
    interface = get_object_or_404(Interface, index=index)
    try:
        text = apply_change(action, interface, request.POST, request)
    except Refused as exc:
        messages.error(request, str(exc))
        # A mistyped value stays in its field to be corrected; check boxes show what is still in force.
        bound = {} if action == "options" else {action: CHANGES[action][0](request.POST, interface=interface)}
        return render(request, "cluster/network_interface.html", _context(interface, **bound), status=400)
    messages.success(request, f"Network Interface {interface.index} ({interface.name}): {text}.")
    return redirect("network_interface", index)

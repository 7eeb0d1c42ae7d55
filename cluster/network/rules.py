"""Network Setup on the shared address: the interfaces every node has, and each node's address on them.

A change is checked in full before anything is written; a refused change
leaves no trace (no event, no configuration generation). An accepted one is
recorded as an operator action and committed as a new generation in the same
transaction.
"""

import ipaddress

from cluster import events
from cluster.configuration import rules as config
from cluster.models import Interface
from cluster.network.document import CHECKS_REQUIRED, MAX_ADDITIONAL, Refused, check_unique, host
from cluster.network.forms import (
    AddAddressForm,
    AddressesForm,
    LinkForm,
    MtuForm,
    OptionsForm,
    RemoveAddressForm,
    SharedAddressForm,
)

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


def apply_change(action, interface, post, actor):
    """Validate, then change, record and commit in one transaction; returns what changed."""
    form_class, change = CHANGES[action]
    with config.change(actor.user):
        # All interfaces, in one order: two operators unticking "Use for Cluster checks" on two
        # interfaces at once must not both see the other still ticked.
        locked = {i.pk: i for i in Interface.objects.select_for_update().order_by("index")}
        current = locked[interface.pk]
        form = form_class(post, interface=current)
        if not form.is_valid():
            raise Refused(first_error(form))
        text = change(current, form.cleaned_data, form)
        events.operator_action(actor, f"Network Setup: {current.name} {text}")
    return text


def first_error(form):
    return next(iter(form.errors.values()))[0]


# --- views ---------------------------------------------------------------------

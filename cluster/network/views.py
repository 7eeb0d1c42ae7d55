"""Network Setup on the shared address: the interfaces every node has, and each node's address on them.

A change is checked in full before anything is written; a refused change
leaves no trace (no event, no configuration generation). An accepted one is
recorded as an operator action and committed as a new generation in the same
transaction.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import events
from cluster.models import Interface, Node
from cluster.network.document import Refused, ensure_interfaces, link_status
from cluster.network.rules import CHANGES, apply_change


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
        text = apply_change(action, interface, request.POST, events.Actor.of(request))
    except Refused as exc:
        messages.error(request, str(exc))
        # A mistyped value stays in its field to be corrected; check boxes show what is still in force.
        bound = {} if action == "options" else {action: CHANGES[action][0](request.POST, interface=interface)}
        return render(request, "cluster/network_interface.html", _context(interface, **bound), status=400)
    messages.success(request, f"Network Interface {interface.index} ({interface.name}): {text}.")
    return redirect("network_interface", index)

"""A unit's own Network Setup: its interface addresses and default gateway; the cluster's settings read-only.

The unit's own choices live in its state directory (local_network.json), so
they survive the control plane and are what the unit itself uses; what the
cluster sets for every node comes in the configuration document and is shown,
not edited, here.
"""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from cluster.models import Interface
from cluster.network.document import host, parse_interface_address
from nodes import agent
from nodes.local import wui_url
from wui.text import short

LOCAL_FILE = "local_network.json"


class LocalInterfaceForm(forms.Form):
    interface = forms.CharField(max_length=32)
    address = forms.CharField(
        label="Interface Address (address/prefix)",
        max_length=49,
        error_messages={"required": "Interface Address: enter an IPv4 address/prefix such as 10.0.0.5/24"},
    )
    use_for_default_gateway = forms.BooleanField(label="Use for Default Gateway", required=False)

    def __init__(self, *args, rows, **kwargs):
        self.rows = rows
        super().__init__(*args, **kwargs)

    def clean_interface(self):
        name = self.cleaned_data["interface"]
        if name not in {row["name"] for row in self.rows}:
            raise forms.ValidationError(f"Interface: this unit has no interface {short(name)}")
        return name

    def clean_address(self):
        return parse_interface_address(self.cleaned_data["address"], "Interface Address")

    def clean(self):
        name, address = self.cleaned_data.get("interface"), self.cleaned_data.get("address")
        if name and address:
            check_free(host(address), name, self.rows)
        return self.cleaned_data


def check_free(address, name, rows):
    """The address may not be another interface's of this unit, nor one the cluster gives out."""
    for row in rows:
        if row["name"] != name and address in {host(a) for a in [row["address"], *row["other_addresses"]]}:
            raise forms.ValidationError(f"Interface Address: {address} is already this unit's address on {row['name']}")
    if address in cluster_addresses():
        raise forms.ValidationError(f"Interface Address: {address} is an address of the cluster, not of this unit")


def own_rows():
    """Each interface's own address and gateway choice: what was saved here, else what the unit reports."""
    saved = agent.read_json(LOCAL_FILE, {}).get("interfaces", {})
    rows = []
    for index, facts in enumerate(agent.facts()["interfaces"]):
        own = saved.get(facts["name"], {})
        addresses = facts["addresses"]
        rows.append(
            {
                "index": index,
                "name": facts["name"],
                "mac": facts["mac"],
                "address": own.get("address") or (addresses[0] if addresses else ""),
                "other_addresses": addresses[1:],
                "use_for_default_gateway": own.get("use_for_default_gateway", index == 0),
            }
        )
    return rows


def cluster_interfaces():
    """The cluster-wide settings as the newest configuration this unit applied has them."""
    document = agent.read_json("config.json", {}).get("config") or {}
    links = dict(Interface.LinkMode.choices)
    return [
        {**i, "link": links.get(i.get("link_mode"), i.get("link_mode"))}
        for i in (document.get("network") or {}).get("interfaces", [])
    ]


def cluster_addresses():
    shared = agent.membership().get("shared_address")
    addresses = {shared} if shared else set()
    for interface in cluster_interfaces():
        if interface.get("cluster_shared_address"):
            addresses.add(interface["cluster_shared_address"])
        addresses.update(host(a) for a in interface.get("additional_addresses", []))
    return addresses


def network_setup(request):
    rows = own_rows()
    form = LocalInterfaceForm(request.POST if request.method == "POST" else None, rows=rows)
    if request.method == "POST":
        if form.is_valid():
            save(form.cleaned_data, request)
            return redirect("network_setup")
        messages.error(request, next(iter(form.errors.values()))[0])
    return render(request, "nodes/network.html", _context(rows, form), status=400 if form.is_bound else 200)


def save(data, request):
    document = agent.read_json(LOCAL_FILE, {})
    interfaces = document.setdefault("interfaces", {})
    interfaces[data["interface"]] = {
        "address": data["address"],
        "use_for_default_gateway": data["use_for_default_gateway"],
    }
    agent.write_json(LOCAL_FILE, document)
    gateway = "on" if data["use_for_default_gateway"] else "off"
    who = f"{request.user.get_username()} from {request.META.get('REMOTE_ADDR', '?')}"
    text = f"Network Setup: {data['interface']} address {data['address']}, Use for Default Gateway {gateway}"
    agent.append_log("info", f"{text} by {who}")
    messages.success(request, f"{text}.")


def _context(rows, form):
    shared = agent.membership().get("shared_address")
    return {
        "rows": rows,
        "form": form,
        "cluster_interfaces": cluster_interfaces(),
        "shared_url": wui_url(shared, "network-setup/") if shared else None,
    }

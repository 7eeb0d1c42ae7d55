"""Virtual Services > View/Modify Services: forms, the cluster's restrictions (seed 2.2) and thin views.

Every change locks the cluster row first: it serialises configuration changes (so two operators
cannot both pass a check that only one of them may pass, nor both take the next generation
number) and fixes whether the restrictions apply for the whole change.
"""

import ipaddress

from django import forms
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import config, events
from cluster.forms import ranged
from cluster.models import Cluster, Node, RealServer, VirtualService


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


# --- forms ---------------------------------------------------------------------


def ipv4(label):
    message = f"{label}: enter an IPv4 address, such as 10.0.0.5"
    return forms.GenericIPAddressField(
        label=label, protocol="IPv4", error_messages={"invalid": message, "required": message}
    )


def usable(label, value):
    address = ipaddress.IPv4Address(value)
    if address.is_unspecified or address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        raise forms.ValidationError(f"{label}: {value} is not a host address")
    return value


def reasons(form):
    return [e for errors in form.errors.values() for e in errors]


HINTS = {
    "port": "Valid Values: 1-65535",
    "layer": "Layer 7 in a cluster",
    "persistence_timeout": "seconds (Valid Values: 1-604800)",
    "transparency": "not possible in a cluster",
    "subnet_originating": "always on in a cluster",
    "check_url": "a path, such as /health",
    "check_status": "Valid Values: 100-599",
    "interface": "only the primary interface in a cluster",
}


class VirtualServiceForm(forms.ModelForm):
    name = forms.CharField(
        label="Service Name", max_length=64, error_messages={"required": "Service Name: enter a name"}
    )
    address = ipv4("Virtual Address")
    port = ranged("Port", 1, 65535)
    persistence_timeout = ranged("Persistence Timeout", 1, 604800)
    check_url = forms.RegexField(
        label="Health Check URL",
        regex=r"^/[\x21-\x7e]*$",
        max_length=255,
        error_messages={
            m: "Health Check URL: enter a path that starts with /, such as /health (no spaces)"
            for m in ("invalid", "required", "max_length")
        },
    )
    check_status = ranged("Expected HTTP Status", 100, 599)
    interface = forms.RegexField(
        label="Interface",
        regex=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$",
        error_messages={m: "Interface: enter an interface name, such as eth0" for m in ("invalid", "required")},
    )

    class Meta:
        model = VirtualService
        fields = [
            "name",
            "address",
            "port",
            "protocol",
            "layer",
            "scheduling",
            "persistence",
            "persistence_timeout",
            "transparency",
            "subnet_originating",
            "check_url",
            "check_status",
            "interface",
            "enabled",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, label_suffix="", **kwargs)
        for name, hint in HINTS.items():
            self.fields[name].help_text = hint
        for field in self.fields.values():
            if isinstance(field, forms.ChoiceField):
                message = f"{field.label}: choose {' or '.join(str(label) for _, label in field.choices)}"
                field.error_messages.update(invalid_choice=message, required=message)

    def clean_address(self):
        return usable("Virtual Address", self.cleaned_data["address"])

    def validate_unique(self):
        address, port = self.cleaned_data.get("address"), self.cleaned_data.get("port")
        other = VirtualService.objects.filter(address=address, port=port).exclude(pk=self.instance.pk).first()
        if other:
            self.add_error("port", f"Port: {address}:{port} is already used by Virtual Service {other.name}")


class RealServerForm(forms.ModelForm):
    address = ipv4("Real Server Address")
    port = ranged("Real Server Port", 1, 65535)
    weight = ranged("Weight", 1, 65535)

    class Meta:
        model = RealServer
        fields = ["address", "port", "weight", "enabled"]

    def clean_address(self):
        return usable("Real Server Address", self.cleaned_data["address"])

    def validate_unique(self):
        address, port = self.cleaned_data.get("address"), self.cleaned_data.get("port")
        siblings = RealServer.objects.filter(virtual_service=self.instance.virtual_service_id)
        if siblings.filter(address=address, port=port).exclude(pk=self.instance.pk).exists():
            self.add_error("port", f"Real Server Port: {address}:{port} is already a real server of this service")


# --- changes -------------------------------------------------------------------


def _locked_service(pk):
    return get_object_or_404(VirtualService.objects.select_for_update(), pk=pk)


def _valid(form):
    if not form.is_valid():
        raise Refused(reasons(form), form)
    return form.save(commit=False)


def _committed(request, sentence):
    events.operator_action(request, sentence)


def _save(row, form):
    """Save; a duplicate that slipped past the form (another database writer) is refused, not a 500."""
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as exc:
        raise Refused([f"{row.address}:{row.port} is already in use; reload the page and try again"], form) from exc


def save_service(request, pk=None):
    """Create (no pk) or change a Virtual Service; Refused means nothing was saved."""
    with config.change(request.user):
        form = VirtualServiceForm(request.POST, instance=_locked_service(pk) if pk else None)
        vs = _valid(form)
        _enforce(vs, list(vs.real_servers.all()) if pk else [], form)
        if pk and not form.has_changed():
            return vs, False
        _save(vs, form)
        _committed(request, _service_sentence(vs, form, pk))
    return vs, True


def _service_sentence(vs, form, pk):
    if not pk:
        return f"Virtual Service {vs} created"
    return f"Virtual Service {vs} changed ({', '.join(str(form.fields[f].label) for f in form.changed_data)})"


def delete_service(request, pk):
    with config.change(request.user):
        vs = _locked_service(pk)
        sentence = f"Virtual Service {vs} deleted"
        vs.delete()
        _committed(request, sentence)
    return sentence


def save_real_server(request, vs_pk, rs_pk=None):
    """Add (no rs_pk) or change one real server of a service; Refused means nothing was saved."""
    with config.change(request.user):
        vs = _locked_service(vs_pk)
        row = get_object_or_404(vs.real_servers, pk=rs_pk) if rs_pk else RealServer(virtual_service=vs)
        before = _describe(row) if rs_pk else None
        form = RealServerForm(request.POST, instance=row)
        rs = _valid(form)
        _enforce(vs, [*(r for r in vs.real_servers.all() if r.pk != rs.pk), rs], form)
        if rs_pk and not form.has_changed():
            return vs, rs, False
        _save(rs, form)
        after = _describe(rs)
        sentence = f"changed from {before} to {after}" if before else f"{after} added"
        _committed(request, f"Virtual Service {vs}: real server {sentence}")
    return vs, rs, True


def _describe(rs):
    return f"{rs} (weight {rs.weight}, {'enabled' if rs.enabled else 'disabled'})"


def delete_real_server(request, vs_pk, rs_pk):
    with config.change(request.user):
        vs = _locked_service(vs_pk)
        rs = get_object_or_404(vs.real_servers, pk=rs_pk)
        rs.delete()
        _committed(request, f"Virtual Service {vs}: real server {rs} removed")
    return vs, rs


# --- views ---------------------------------------------------------------------


def service_list(request):
    services = VirtualService.objects.annotate(real_server_count=Count("real_servers"))
    in_cluster = clustering()
    context = {
        "services": sorted(services, key=VirtualService.sort_key),
        "incompatible": incompatible_settings() if in_cluster else [],
        "last_in_cluster": in_cluster and len(services) == 1,
    }
    return render(request, "cluster/vs_list.html", context)


def service_add(request):
    if request.method != "POST":
        # An unsaved row, so that every field starts at the model's default.
        form = VirtualServiceForm(instance=VirtualService(address=Cluster.get().shared_address))
        return render(request, "cluster/vs_add.html", {"form": form})
    try:
        vs, _ = save_service(request)
    except Refused as exc:
        return render(request, "cluster/vs_add.html", {"form": exc.form, "errors": exc.reasons}, status=400)
    messages.success(request, f"Virtual Service {vs} created. Add its real servers below.")
    return redirect("virtual_service_edit", pk=vs.pk)


def service_edit(request, pk):
    if request.method != "POST":
        return render(request, "cluster/vs_edit.html", _edit_context(pk))
    try:
        vs, changed = save_service(request, pk)
    except Refused as exc:
        return _refused(request, pk, exc, form=exc.form)
    messages.success(request, f"Virtual Service {vs} saved." if changed else "Nothing changed.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def service_delete(request, pk):
    messages.success(request, f"{delete_service(request, pk)}.")
    return redirect("virtual_services")


@require_POST
def real_server_add(request, pk):
    try:
        vs, rs, _ = save_real_server(request, pk)
    except Refused as exc:
        return _refused(request, pk, exc, rs_form=exc.form)
    messages.success(request, f"Real server {rs} added to Virtual Service {vs}.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def real_server_edit(request, pk, rs_pk):
    try:
        vs, rs, changed = save_real_server(request, pk, rs_pk)
    except Refused as exc:
        return _refused(request, pk, exc, failed_rs=(rs_pk, exc.form))
    messages.success(request, f"Real server {rs} of Virtual Service {vs} saved." if changed else "Nothing changed.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def real_server_delete(request, pk, rs_pk):
    vs, rs = delete_real_server(request, pk, rs_pk)
    messages.success(request, f"Real server {rs} removed from Virtual Service {vs}.")
    return redirect("virtual_service_edit", pk=vs.pk)


def _refused(request, pk, exc, **forms_shown):
    return render(request, "cluster/vs_edit.html", _edit_context(pk, errors=exc.reasons, **forms_shown), status=400)


def _edit_context(pk, form=None, rs_form=None, failed_rs=(None, None), errors=()):
    """The edit page from the database, with the operator's refused input kept in the form that failed."""
    vs = get_object_or_404(VirtualService, pk=pk)
    rows = sorted(vs.real_servers.all(), key=RealServer.sort_key)
    failed_pk, failed_form = failed_rs
    return {
        "vs": vs,
        "form": form or VirtualServiceForm(instance=vs),
        "rs_form": rs_form or RealServerForm(instance=RealServer()),
        "real_servers": [(rs, failed_form if rs.pk == failed_pk else RealServerForm(instance=rs)) for rs in rows],
        "errors": errors,
        "last_in_cluster": clustering() and VirtualService.objects.count() == 1,
    }

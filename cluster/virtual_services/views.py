"""Virtual Services > View/Modify Services: forms, the cluster's restrictions (seed 2.2) and thin views.

Every change locks the cluster row first: it serialises configuration changes (so two operators
cannot both pass a check that only one of them may pass, nor both take the next generation
number) and fixes whether the restrictions apply for the whole change.
"""

from django.contrib import messages
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import events
from cluster.models import Cluster, RealServer, VirtualService
from cluster.virtual_services.forms import RealServerForm, VirtualServiceForm
from cluster.virtual_services.rules import (
    Refused,
    clustering,
    delete_real_server,
    delete_service,
    incompatible_settings,
    save_real_server,
    save_service,
)

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
        vs, _ = save_service(events.Actor.of(request), request.POST)
    except Refused as exc:
        return render(request, "cluster/vs_add.html", {"form": exc.form, "errors": exc.reasons}, status=400)
    messages.success(request, f"Virtual Service {vs} created. Add its real servers below.")
    return redirect("virtual_service_edit", pk=vs.pk)


def service_edit(request, pk):
    if request.method != "POST":
        return render(request, "cluster/vs_edit.html", _edit_context(pk))
    try:
        vs, changed = save_service(events.Actor.of(request), request.POST, pk)
    except Refused as exc:
        return _refused(request, pk, exc, form=exc.form)
    messages.success(request, f"Virtual Service {vs} saved." if changed else "Nothing changed.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def service_delete(request, pk):
    messages.success(request, f"{delete_service(events.Actor.of(request), pk)}.")
    return redirect("virtual_services")


@require_POST
def real_server_add(request, pk):
    try:
        vs, rs, _ = save_real_server(events.Actor.of(request), request.POST, pk)
    except Refused as exc:
        return _refused(request, pk, exc, rs_form=exc.form)
    messages.success(request, f"Real server {rs} added to Virtual Service {vs}.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def real_server_edit(request, pk, rs_pk):
    try:
        vs, rs, changed = save_real_server(events.Actor.of(request), request.POST, pk, rs_pk)
    except Refused as exc:
        return _refused(request, pk, exc, failed_rs=(rs_pk, exc.form))
    messages.success(request, f"Real server {rs} of Virtual Service {vs} saved." if changed else "Nothing changed.")
    return redirect("virtual_service_edit", pk=vs.pk)


@require_POST
def real_server_delete(request, pk, rs_pk):
    vs, rs = delete_real_server(events.Actor.of(request), pk, rs_pk)
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

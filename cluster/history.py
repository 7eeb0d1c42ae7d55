"""Configuration history: every generation kept with who made it; diff any two; roll back."""

import difflib
import json

from django.apps import apps
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import config, events
from cluster.models import Cluster, ConfigGeneration, VirtualService

SHOWN = 200


def history(request):
    generations = ConfigGeneration.objects.select_related("created_by").defer("document")[:SHOWN]
    return render(request, "cluster/history.html", {"generations": generations})


def diff(request):
    try:
        a, b = int(request.GET["a"]), int(request.GET["b"])
        old = ConfigGeneration.objects.get(number=a)
        new = ConfigGeneration.objects.get(number=b)
    except (KeyError, ValueError, ConfigGeneration.DoesNotExist):
        messages.error(request, "Choose two existing generations to compare")
        return render(
            request, "cluster/history.html", {"generations": ConfigGeneration.objects.all()[:SHOWN]}, status=400
        )
    lines = difflib.unified_diff(_lines(old), _lines(new), f"generation {a}", f"generation {b}", lineterm="")
    return render(request, "cluster/history_diff.html", {"old": old, "new": new, "lines": list(lines)})


def _lines(generation):
    return json.dumps(generation.document, indent=2, sort_keys=True).splitlines()


@require_POST
def rollback(request, number):
    """Bring back an earlier configuration; it becomes a new generation (history is never rewritten)."""
    old = get_object_or_404(ConfigGeneration, number=number)
    with transaction.atomic():
        with config.change(request.user) as done:
            restore(old.document)
        new = done.generation
        events.operator_action(
            request, f"Configuration rolled back to generation {number} (now generation {new.number})"
        )
    messages.success(request, f"Configuration of generation {number} restored as generation {new.number}.")
    return redirect("config_history")


def restore(document):
    """Make the database say what a configuration document says (membership is not configuration).

    Called inside ``config.change()``, which holds the cluster row.
    """
    cluster = Cluster.objects.get(pk=1)
    cluster.virtual_id = document["cluster"]["virtual_id"]
    cluster.drain_time = document["cluster"]["drain_time"]
    cluster.save(update_fields=["virtual_id", "drain_time"])
    _restore_virtual_services(document.get("virtual_services", []))


def _restore_virtual_services(entries):
    VirtualService.objects.all().delete()
    fields = {f.name for f in VirtualService._meta.concrete_fields} - {"id"}
    real_server = _model("RealServer")
    for entry in entries:
        vs = VirtualService.objects.create(**{k: v for k, v in entry.items() if k in fields})
        if real_server is None:
            continue
        rs_fields = {f.name for f in real_server._meta.concrete_fields} - {"id", "virtual_service"}
        for rs in entry.get("real_servers", []):
            real_server.objects.create(virtual_service=vs, **{k: v for k, v in rs.items() if k in rs_fields})


def _model(name):
    try:
        return apps.get_model("cluster", name)
    except LookupError:
        return None

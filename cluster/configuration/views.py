"""Configuration history: every generation kept with who made it; diff any two; roll back."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cluster import events
from cluster.configuration import rules as config
from cluster.models import ConfigGeneration

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
    return render(request, "cluster/history_diff.html", {"old": old, "new": new, "lines": config.diff(old, new)})


@require_POST
def rollback(request, number):
    """Bring back an earlier configuration; it becomes a new generation (history is never rewritten)."""
    old = get_object_or_404(ConfigGeneration, number=number)
    new = config.rollback(old, events.Actor.of(request))
    messages.success(request, f"Configuration of generation {number} restored as generation {new.number}.")
    return redirect("config_history")

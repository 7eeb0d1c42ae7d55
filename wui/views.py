from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from cluster.models import Cluster, Node, VirtualService

PLANNED = {
    "backup_restore": "Backup/Restore",
}


def home(request):
    return render(
        request,
        "wui/home.html",
        {
            "cluster": Cluster.get(),
            "node_count": Node.objects.count(),
            "vs_count": VirtualService.objects.count(),
        },
    )


def not_built(request, page):
    """A page of the menu that is planned but not built yet: say so plainly."""
    return render(request, "wui/not_built.html", {"title": PLANNED[page]}, status=501)


@login_not_required
@require_GET
def health(request):
    return JsonResponse({"ok": True})

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from cluster.models import Cluster, Node, VirtualService


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


@login_not_required
@require_GET
def health(request):
    return JsonResponse({"ok": True})

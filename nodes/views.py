from django.shortcuts import render

from nodes import agent
from nodes.local import unit_mode

PLANNED = {
    "cluster_control": "Cluster Control",
    "network_setup": "Network Setup",
    "system_logs": "System Log Files",
    "reboot": "Reboot",
}


def home(request):
    return render(request, "nodes/home.html", {"facts": agent.facts(), "status": agent.status(), "mode": unit_mode()})


def not_built(request, page):
    return render(request, "wui/not_built.html", {"title": PLANNED[page]}, status=501)

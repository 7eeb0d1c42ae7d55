"""A unit's own WUI: its facts, Create New Cluster / Add to Cluster, the join endpoint, reboot."""

import contextlib
import json
import os
import ssl
import threading
import urllib.request
from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from cluster import events
from cluster.backup import views as backup_views
from cluster.certificates.rules import certificate_directory
from cluster.membership.forms import SharedAddressForm
from cluster.models import Cluster
from nodes import agent, membership
from nodes.agent.machine import wui_certificate_fingerprint
from nodes.local import shared_url, unit_mode, wui_url
from wui import text, tls

PLANNED = {}
MAX_JOIN_BODY = 8192


def home(request):
    return render(request, "nodes/home.html", {"facts": agent.facts(), "status": agent.status(), "mode": unit_mode()})


def not_built(request, page):
    return render(request, "wui/not_built.html", {"title": PLANNED[page]}, status=501)


@csrf_exempt  # backup_views sets the upload handlers first, then checks CSRF itself
def backup_restore(request):
    """A standalone unit backs up and restores its own configuration; a member's is the cluster's."""
    mode = unit_mode()
    if mode != "standalone":
        shared = agent.membership().get("shared_address")
        url = wui_url(shared, "backup-restore/") if shared else None
        return render(request, "cluster/backup_restore.html", {"not_offered": mode, "shared_url": url}, status=403)
    return backup_views.backup_restore(request)


def saved_backup(request, name):
    """A standalone unit's own automatic backups; a member's are the cluster's, on the shared address."""
    if unit_mode() != "standalone":
        raise Http404("No such backup")
    return backup_views.saved_backup(request, name)


def cluster_control(request):
    cluster = Cluster.get()
    state = agent.membership()
    mode = state.get("mode", "standalone")
    was = request.GET.get("was", mode)
    # The cluster finishes a join by rebooting the unit: this page says so, waits through the reboot
    # (its polls fail meanwhile) and says when the unit is back, instead of reloading into a unit
    # that does not answer.
    converted = mode == "member" and "was" in request.GET and was != "member"
    back = converted and _rebooted_since_joining()
    context = {
        "cluster": cluster,
        "mode": mode,
        "membership": state,
        "shared_url": shared_url(),
        "unit_address": request.get_host().rsplit(":", 1)[0],
        "offer": (offer := agent.join_offer()),
        # Shown beside the host key's: what the browser shows for this page, and what the cluster pins.
        "certificate_fingerprint": wui_certificate_fingerprint() if offer else "",
        "join_window_minutes": agent.JOIN_WINDOW // 60,
        "converting": converted and not back,
        "back": mode == "member" and request.GET.get("back") == "1" and _rebooted_since_joining(),
    }
    if request.htmx and not request.htmx.boosted and back:
        # Back after the reboot: a whole page, since the menu is now a member's.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("cluster_control") + "?back=1"
        return response
    template = "nodes/cluster_control.html"
    if request.htmx and not request.htmx.boosted:
        template += "#join"
    response = render(request, template, context)
    if request.htmx and was != mode and not converted:
        # Joining or back to standalone changes the menu too, which the polled part does not hold.
        response["HX-Refresh"] = "true"
    return response


def _rebooted_since_joining():
    """Whether the unit started after it became a member (the membership file's time is when)."""
    try:
        became_member = os.path.getmtime(os.path.join(agent.node_home(), "membership.json"))
    except OSError:
        return False
    return agent.status().get("booted_at", 0) > became_member


@require_POST
def add_to_cluster(request):
    try:
        membership.offer_join(events.Actor.of(request))
    except membership.Refused as exc:
        messages.error(request, str(exc))
    return redirect("cluster_control")


@require_POST
def cancel_join(request):
    agent.cancel_join()
    return redirect("cluster_control")


@require_GET
def shared_answers(request):
    """Whether the cluster's shared WUI answers, for the page that waits to Continue there.

    This unit asks, not the browser: until the operator has accepted the shared address's
    certificate, the browser refuses it, and a refused certificate looks like no answer at all, so
    Continue would never open. The shared WUI runs on this very unit (its admin) with this unit's
    own certificate, so that is the certificate it must present.
    """
    url = shared_url("health")
    if url is None:
        return JsonResponse({"answers": False})
    context = ssl.create_default_context(cafile=tls.certificate_file(certificate_directory()))
    # That very certificate, whatever names it has: an operator's own one may not name the shared address.
    context.check_hostname = False
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            answers = response.status == 200
    except (OSError, ValueError):
        answers = False
    return JsonResponse({"answers": answers})


def create_cluster(request):
    form = SharedAddressForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not form.is_valid():
            error = " ".join(e for errs in form.errors.values() for e in errs)
            return render(request, "nodes/create_cluster.html", {"form": form, "error": error}, status=400)
        try:
            shared = membership.create_cluster(form.cleaned_data["shared_address"], events.Actor.of(request))
        except membership.Refused as exc:
            return render(request, "nodes/create_cluster.html", {"form": form, "error": str(exc)}, status=400)
        return render(request, "nodes/rebooting.html", {"shared": shared, "shared_url": wui_url(shared)})
    return render(request, "nodes/create_cluster.html", {"form": form})


@login_not_required
@csrf_exempt  # called by the cluster's control plane, not a browser; the one-time code is the credential
@require_POST
def join(request):
    """The cluster's side of Add New Node talks to the unit here; the one-time code is the credential.

    JSON object with "code" and one of:
      "check": true      verify the code without using it; answers the unit's facts.
      "cluster_key", "shared_address"
                         accept: authorise the key, become "joining"; answers the facts.
      "abort": true      undo a join not finished: forget the key, standalone; answers {"mode": "standalone"}.
    While the unit is joining, check and accept with the same code (and key) answer the same again.
    Refusals are {"error": reason}: 400 malformed, 409 not waiting (or already joining or in a cluster),
    403 wrong or expired code, 413 too large.
    """
    if len(request.body) > MAX_JOIN_BODY:
        return JsonResponse({"error": "request too large"}, status=413)
    try:
        payload = json.loads(request.body)
        code = payload["code"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "expected JSON with a join code"}, status=400)
    try:
        if payload.get("abort"):
            return JsonResponse(agent.abort_join(code))
        if payload.get("check"):
            agent.check_join_code(code)
            return JsonResponse(agent.facts())
        facts = agent.accept_join(code, payload.get("cluster_key"), payload.get("shared_address"))
    except agent.Malformed as exc:
        got = f" (got {text.short(code, 12)})" if isinstance(code, str) else ""
        return JsonResponse({"error": f"{exc}{got}"}, status=400)
    except agent.NotWaiting as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except agent.AgentError as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    _look_again_after_the_window()
    return JsonResponse(facts)


def _look_again_after_the_window():
    """A join the cluster never finishes is undone on time even when no one reads the membership."""
    timer = threading.Timer(agent.JOIN_WINDOW + 1, _read_membership)
    timer.daemon = True
    timer.start()


def _read_membership():
    # Reading the membership undoes a lapsed join; if it fails, the next reader does it.
    with contextlib.suppress(agent.AgentError, OSError):
        agent.membership()


def reboot(request):
    if request.method == "POST":
        agent.reboot()
        return render(request, "nodes/rebooting.html", {"shared": None})
    return render(request, "nodes/reboot.html")


def system_logs(request):
    """This unit's own log, newest first (the cluster's logs are on the shared address)."""
    lines = [{**line, "time": datetime.fromtimestamp(line["time"], UTC)} for line in agent.read_log(500)]
    return render(request, "nodes/logs.html", {"lines": lines})

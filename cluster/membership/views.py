"""Cluster Control, HA and Clustering: thin views over cluster.membership."""

import hashlib
import re
from datetime import datetime, timedelta

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from cluster import events
from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.membership.forms import AddNodeForm, DrainTimeForm, ModeForm, VirtualIdForm
from cluster.membership.rules import node_rows
from cluster.models import Cluster, JoinRequest, Node, VirtualService
from cluster.rollout import rules as rollout


def home(request):
    """The shared address's home page: the cluster at a glance."""
    return render(
        request,
        "wui/home.html",
        {"cluster": Cluster.get(), "node_count": Node.objects.count(), "vs_count": VirtualService.objects.count()},
    )


# Add New Node requests stay listed this long after they were made, unless the operator clears them.
RECENT_JOINS = timedelta(minutes=10)
SHOWN_JOINS = 5


def _recent_joins(request, now):
    """The Add New Node requests this operator still needs to see: the running ones, and the finished
    ones of the last minutes that were not cleared (Clear, Continue) in this session. Nothing is deleted."""
    since = now - RECENT_JOINS
    cleared_at = request.session.get("joins_cleared_at") if request else None
    if cleared_at:
        since = max(since, datetime.fromisoformat(cleared_at))
    finished = Q(created_at__gte=since) & ~Q(pk__in=request.session.get("joins_seen", []) if request else [])
    return list(JoinRequest.objects.filter(Q(state=JoinRequest.State.PENDING) | finished)[:SHOWN_JOINS])


def _context(request=None, **extra):
    cluster, rows, has_vs = node_rows()
    enabled = sum(1 for r in rows if r["node"].enabled)
    joins = _recent_joins(request, timezone.now())
    return {
        "cluster": cluster,
        "rows": rows,
        "has_vs": has_vs,
        **membership.traffic(rows),
        "enabled_count": enabled,
        "admin_disabled": next((r["node"] for r in rows if r["node"].is_admin and not r["node"].enabled), None),
        "joins": joins,
        "joins_finished": any(j.state != JoinRequest.State.PENDING for j in joins),
        "latest_generation": config.latest_number(),
        "add_form": AddNodeForm(),
        "vid_form": VirtualIdForm(initial={"virtual_id": cluster.virtual_id}),
        "drain_form": DrainTimeForm(initial={"drain_time": cluster.drain_time}),
        "show_options": request is not None and request.GET.get("options") == "open",
        "errors": {},
        **rollout.panel(),
        **extra,
    }


# A masked CSRF token differs on every render though nothing changed: the version leaves it out.
_CSRF_VALUE = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*"')


def live_version(fragment):
    """What the node table looks like, in a few characters: equal versions, nothing new to show."""
    return hashlib.blake2b(_CSRF_VALUE.sub(r'\1"', fragment).encode(), digest_size=12).hexdigest()


def cluster_control(request):
    context = _context(request)
    fragment = render_to_string("cluster/control.html#live", context, request)
    version = live_version(fragment)
    if request.htmx and not request.htmx.boosted:
        # The browser keeps the table it has (and the operator's focus in it) unless it changed.
        if request.headers.get("X-Live-Version") == version:
            return HttpResponse(status=204)
        response = HttpResponse(fragment.replace('data-live-version=""', f'data-live-version="{version}"', 1))
        response["Cache-Control"] = "no-store"
        return response
    return render(request, "cluster/control.html", {**context, "live_version": version})


def _refused(request, exc, where="node", **extra):
    """Re-render Cluster Control with the refusal beside what caused it: "add" (the Add New Node
    form), a Cluster Parameters field's name, or "node" (the node table's operations)."""
    return render(request, "cluster/control.html", _context(request, errors={where: str(exc)}, **extra), status=400)


@require_POST
def add_node(request):
    """Add New Node. The same form's list of requests is also tidied here: "clear" hides the finished
    ones, "continue" (the seed's step 7, once a node was added) hides that one; for this session only."""
    if "clear" in request.POST:
        request.session["joins_cleared_at"] = timezone.now().isoformat()
        return redirect("cluster_control")
    if "continue" in request.POST:
        seen = request.session.get("joins_seen", [])
        if request.POST["continue"].isdigit():
            # Older ones have left the list by age anyway: the session keeps only the last few.
            request.session["joins_seen"] = [*seen, int(request.POST["continue"])][-50:]
        return redirect("cluster_control")
    form = AddNodeForm(request.POST)
    if not form.is_valid():
        return _refused(request, " ".join(e for errs in form.errors.values() for e in errs), "add", add_form=form)
    try:
        membership.request_join(
            form.cleaned_data["address"],
            form.cleaned_data["code"],
            form.cleaned_data["fingerprint"],
            events.Actor.of(request),
        )
    except membership.Refused as exc:
        return _refused(request, exc, "add", add_form=form)
    messages.success(request, f"Adding {form.cleaned_data['address']}: see the result below.")
    return redirect("cluster_control")


ACTIONS = {
    "enable": membership.enable,
    "disable": membership.disable,
    "delete": membership.request_delete,
    "resync": membership.resync,
    "reboot": rollout.reboot,
}
DONE = {
    "enable": "enabled: it comes into rotation after 30 s up",
    "disable": "disabled: draining",
    "delete": "is being deleted",
    "resync": "is being sent the whole configuration again",
    "reboot": "is rebooting to run the new software: it goes Down, then comes back",
}


@require_POST
def node_action(request, pk, action):
    if action not in ACTIONS:
        raise Http404("No such operation")
    try:
        node = ACTIONS[action](pk, events.Actor.of(request))
    except membership.Refused as exc:
        return _refused(request, exc)
    done = DONE[action]
    if node.is_admin and action in ("disable", "enable"):
        # The admin node's row reads Admin whatever it takes: say what changed for its traffic.
        done = (
            "(the admin node) disabled: it takes no new connections; it still runs the cluster and its shared WUI"
            if action == "disable"
            else "(the admin node) enabled: it takes new connections again"
        )
    # The seed's Delete is two steps: OK to confirm, then OK to the confirmation message.
    tags = "acknowledge" if action == "delete" else ""
    messages.success(request, f"Node {node.number} {done}.", extra_tags=tags)
    return redirect("cluster_control")


ROLLOUT_ACTIONS = {
    "rolling": (rollout.start_rolling, "Rolling reboot started: one node at a time, the admin node last."),
    "resume": (rollout.resume, "Rolling reboot resumed."),
    "cancel": (rollout.cancel, "Rolling reboot cancelled: no further node is taken out."),
}


@require_POST
def rollout_action(request, action):
    if action not in ROLLOUT_ACTIONS:
        raise Http404("No such operation")
    func, done = ROLLOUT_ACTIONS[action]
    try:
        func(events.Actor.of(request))
    except membership.Refused as exc:
        return _refused(request, exc)
    messages.success(request, done)
    return redirect("cluster_control")


@require_POST
def set_parameter(request, field):
    if field not in ("virtual_id", "drain_time"):
        raise Http404("No such parameter")
    form = (VirtualIdForm if field == "virtual_id" else DrainTimeForm)(request.POST)
    if not form.is_valid():
        return _refused(
            request,
            form.errors[field][0],
            field,
            show_options=True,
            **{"vid_form" if field == "virtual_id" else "drain_form": form},
        )
    membership.set_parameter(field, form.cleaned_data[field], events.Actor.of(request))
    messages.success(request, f"{form.fields[field].label} set to {form.cleaned_data[field]}.")
    # Cluster Parameters stay open, so that the operator sees the value just set.
    return redirect(reverse("cluster_control") + "?options=open#options")


def ha_clustering(request):
    cluster = Cluster.get()
    form = ModeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not form.is_valid():
            messages.error(request, form.errors["mode"][0])
        else:
            try:
                membership.choose_mode(form.cleaned_data["mode"], events.Actor.of(request))
            except membership.Refused as exc:
                messages.error(request, str(exc))
            else:
                return redirect("cluster_control" if form.cleaned_data["mode"] == "clustering" else "ha_clustering")
        return render(request, "cluster/ha_clustering.html", {"cluster": cluster, "form": form}, status=400)
    return render(request, "cluster/ha_clustering.html", {"cluster": cluster, "form": form})

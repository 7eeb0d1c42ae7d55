"""A unit's own Virtual Services and Update Software.

A standalone unit is a whole LoadMaster: it runs the shared WUI's Virtual Services pages on its
own database (every change is applied on the unit itself when it commits) and updates its own
software. A unit in a cluster runs what the cluster sends: these pages change nothing there and
point to the shared address.
"""

import os
import re
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from cluster.models import VirtualService
from firmware import patch
from nodes import agent
from nodes.agent.formats import fsync_dir
from nodes.local import unit_mode, wui_url
from wui.uploads import streamed_upload

SHA256 = re.compile(r"[0-9a-f]{64}")
PROTOCOLS = dict(VirtualService.Protocol.choices)
MODES = {"admin": "the admin node", "member": "a member", "joining": "joining"}


def _cluster(mode, page):
    """What the page says of the cluster this unit is in, with the page's address on the shared WUI."""
    shared = agent.membership().get("shared_address")
    return {
        "in_cluster": True,
        "mode": mode,
        "role": MODES.get(mode, mode),
        "shared": shared,
        "shared_url": wui_url(shared, f"{page}/") if shared else None,
    }


# --- Virtual Services ----------------------------------------------------------------------


def standalone_only(view):
    """The shared WUI's Virtual Services view on a standalone unit; read-only on a unit in a cluster.

    On a cluster's unit the configuration comes from the shared address: a change made here
    would be overwritten by the next push (and on the admin unit would bypass it).
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        mode = unit_mode()
        if mode == "standalone":
            return view(request, *args, **kwargs)
        return _services_in_cluster(request, mode)

    return wrapper


def _services_in_cluster(request, mode):
    applied = agent.read_json("config.json", {})
    services = (applied.get("config") or {}).get("virtual_services") or []
    rows = [
        {
            **vs,
            "protocol_label": PROTOCOLS.get(vs.get("protocol"), vs.get("protocol")),
            "real_server_count": len(vs.get("real_servers") or []),
        }
        for vs in services
        if isinstance(vs, dict)
    ]
    refused = request.method not in ("GET", "HEAD")
    context = {
        **_cluster(mode, "virtual-services"),
        "services": rows,
        "generation": applied.get("generation", 0),
        "refused": refused,
    }
    return render(request, "nodes/standalone_virtual_services.html", context, status=403 if refused else 200)


# --- Update Software -----------------------------------------------------------------------


def _incoming():
    """Where the agent takes received patches from; the WUI streams uploads there (one rename to keep)."""
    home = agent.node_home()
    path = Path(home) / "incoming"
    path.mkdir(mode=0o700, exist_ok=True)
    _give_to_node_owner(home, path)
    return path


def _give_to_node_owner(home, *paths):
    # The WUI runs as root, the agent as the node's user: should the unit join a cluster, the
    # agent must still receive patches here and replace the slots this page installed.
    if os.geteuid() != 0:
        return
    st = os.stat(home)
    for path in paths:
        os.lchown(path, st.st_uid, st.st_gid)


def _too_large(request, size):
    size, limit = patch.human_size(size), patch.human_size(settings.FIRMWARE_MAX_BYTES)
    error = f"The file is too large: the upload is {size}, over the {limit} limit for a software update."
    return _page(request, status=413, error=error)


@csrf_exempt  # the upload handler sets its handlers first, then checks CSRF itself
@require_http_methods(["GET", "POST"])
def update_software(request):
    mode = unit_mode()
    if mode != "standalone":
        # Before the body is read: a cluster's unit takes no patch from this page.
        refused = request.method == "POST"
        context = _cluster(mode, "update-software")
        return render(
            request, "nodes/standalone_update.html", {**context, "refused": refused}, status=403 if refused else 200
        )
    return _standalone_update(request)


@streamed_upload(_incoming, ".upload", lambda: settings.FIRMWARE_MAX_BYTES, _too_large)
def _standalone_update(request):
    if request.method == "GET":
        return _page(request)
    if request.POST.get("action") == "install":
        return _install(request)
    return _receive(request)


def _verify(path, allow_downgrade):
    return patch.verify(
        path,
        settings.FIRMWARE_TRUSTED_KEYS,
        settings.FIRMWARE_MAX_BYTES,
        agent.running_version(),
        allow_downgrade=allow_downgrade,
    )


def _receive(request):
    upload = request.FILES.get("patch")
    if upload is None:
        return _page(request, status=400, error="Choose a software update file first.")
    allow_downgrade = request.POST.get("allow_downgrade") == "1"
    try:
        manifest = _verify(upload.temporary_file_path(), allow_downgrade)
    except patch.PatchError as e:
        # The temporary file goes when the request ends: a refused patch is not kept.
        return _page(request, status=400, error=f"The software update was refused: {e}.")
    _keep(upload, manifest)
    return _page(request, manifest=manifest, allow_downgrade=allow_downgrade)


def _keep(upload, manifest):
    """Renamed into place under the name the agent expects: it sees the whole patch or none."""
    incoming = _incoming()
    kept = incoming / f"{manifest.sha256}.patch"
    os.replace(upload.temporary_file_path(), kept)
    _give_to_node_owner(agent.node_home(), kept)
    # Patches are large and only the one just validated is offered for installing.
    for other in incoming.glob("*.patch"):
        if other != kept:
            other.unlink(missing_ok=True)
    fsync_dir(incoming)  # the rename must survive a power loss once the page has said "validated"


def _install(request):
    sha256 = request.POST.get("patch", "")
    if not SHA256.fullmatch(sha256):
        return _page(request, status=400, error="The software update was not installed: upload it again.")
    path = _incoming() / f"{sha256}.patch"
    if not path.is_file():
        error = "The software update was not installed: it is no longer waiting on this unit; upload it again."
        return _page(request, status=409, error=error)
    try:
        # Checked again as it is now: the trusted keys or the running version may have changed since.
        manifest = _verify(path, request.POST.get("allow_downgrade") == "1")
        with agent.state_lock():  # two operators pressing OK at once install it once
            installed = agent.firmware_install(path.name, sha256)
            _own_slots()
    except (patch.PatchError, agent.AgentError) as e:
        path.unlink(missing_ok=True)
        return _page(request, status=400, error=f"The software update was not installed: {e}.")
    who = request.user.get_username()
    agent.append_log(
        "info",
        f"Software update {manifest.name} {installed['version']} installed by {who} "
        f"from {request.META.get('REMOTE_ADDR', '?')}",
    )
    # Redirected: the page then says what the unit's slots hold, also after a reload.
    return redirect("update_software")


def _own_slots():
    home = agent.node_home()
    slots = Path(home) / "slots"
    if not slots.is_dir():
        return
    paths = [slots]
    for root, dirs, files in os.walk(slots):
        paths += [Path(root) / name for name in dirs + files]
    _give_to_node_owner(home, *paths)


def _pending():
    """The version installed in the inactive slot, waiting for a reboot; None if there is none."""
    slots = agent.read_json("slots.json", {})
    return slots.get("pending_version") if slots.get("pending") else None


def _page(request, status=200, **context):
    context = {
        "running_version": agent.running_version(),
        "pending_version": _pending(),
        "max_bytes": settings.FIRMWARE_MAX_BYTES,
        **context,
    }
    return render(request, "nodes/standalone_update.html", context, status=status)

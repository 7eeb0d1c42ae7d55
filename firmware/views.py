"""Update Software: upload a firmware patch, validate it and keep it for installing.

The upload is streamed to a file on disk beside the kept patches, never held in
memory, and is kept only if firmware.patch.verify() accepts it.
"""

from dataclasses import replace

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from cluster import events
from cluster.models import Rollout
from cluster.rollout import versions
from cluster.rollout.rules import Refused
from firmware import install, patch
from firmware.install import patch_dir
from nodes.agent.formats import replace_durably
from wui.text import human_size
from wui.uploads import streamed_upload


def _too_large(request, size):
    size, limit = human_size(size), human_size(settings.FIRMWARE_MAX_BYTES)
    error = f"The file is too large: the upload is {size}, over the {limit} limit for a software update."
    return _page(request, status=413, error=error)


@require_http_methods(["GET", "POST"])
@streamed_upload(lambda: patch_dir() / "incoming", ".patch", lambda: settings.FIRMWARE_MAX_BYTES, _too_large)
def update_software(request):
    if request.method == "GET":
        return _page(request)
    if request.POST.get("action") == "install":
        return _install(request)
    return _receive(request)


def _install(request):
    try:
        update = install.start(request.POST.get("patch", ""), events.Actor.of(request))
    except Refused as exc:
        return _page(request, status=409, error=f"The software update was not started: {exc}.")
    messages.success(
        request, f"Installing version {update.version} on every node: each sends, verifies and installs it below."
    )
    return redirect("cluster_control")


def _receive(request):
    upload = request.FILES.get("patch")
    if (active := Rollout.active()) is not None:
        # The temporary file goes when the request ends.
        error = f"The software update was refused: {active.busy}."
        return _page(request, status=409, error=error)
    if upload is None:
        return _page(request, status=400, error="Choose a software update file first.")
    try:
        manifest = patch.verify(
            upload.temporary_file_path(),
            settings.FIRMWARE_TRUSTED_KEYS,
            settings.FIRMWARE_MAX_BYTES,
            versions.cluster_version(),
            allow_downgrade=request.POST.get("allow_downgrade") == "1",
        )
    except patch.PatchError as e:
        # The temporary file goes when the request ends.
        return _page(request, status=400, error=f"The software update was refused: {e}.")
    _keep(upload, manifest)
    return _page(request, manifest=manifest)


def _keep(upload, manifest):
    """Named by its sha256 and renamed into place: a reader sees the whole patch or none."""
    # The rename itself must survive a power loss once we have said "validated".
    replace_durably(upload.temporary_file_path(), patch_dir() / f"{manifest.sha256}.patch")


def kept_patches():
    """The validated patches kept on this unit, newest first."""
    paths = sorted(patch_dir().glob("*.patch"), key=lambda p: p.stat().st_mtime, reverse=True)
    kept = []
    for path in paths:
        try:
            manifest = patch.read_manifest(path)
        except patch.PatchError:
            continue
        kept.append(replace(manifest, sha256=path.stem, size=path.stat().st_size))
    return kept


def _page(request, status=200, **context):
    context = {
        "title": "Update Software",
        # What the nodes run, not what this control plane was built as: an update changes the nodes.
        "running_version": versions.cluster_version(),
        "running_versions": versions.describe(),
        "max_bytes": settings.FIRMWARE_MAX_BYTES,
        "kept": kept_patches(),
        **context,
    }
    return render(request, "firmware/update.html", context, status=status)

"""Update Software: upload a firmware patch, validate it and keep it for installing.

The upload is streamed to a file on disk beside the kept patches, never held in
memory, and is kept only if firmware.patch.verify() accepts it.
"""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from cluster import events
from cluster.rollout import versions
from cluster.rollout.rules import Refused
from firmware import install, patch
from firmware.install import patch_dir
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
    try:
        manifest = install.accept(
            upload.temporary_file_path() if upload else None, request.POST.get("allow_downgrade") == "1"
        )
    except install.Busy as e:
        # The temporary file goes when the request ends.
        return _page(request, status=409, error=f"The software update was refused: {e}.")
    except Refused as e:
        return _page(request, status=400, error=str(e))
    except patch.PatchError as e:
        return _page(request, status=400, error=f"The software update was refused: {e}.")
    return _page(request, manifest=manifest)


def _page(request, status=200, **context):
    context = {
        "title": "Update Software",
        # What the nodes run, not what this control plane was built as: an update changes the nodes.
        "running_version": versions.cluster_version(),
        "running_versions": versions.describe(),
        "max_bytes": settings.FIRMWARE_MAX_BYTES,
        "kept": install.kept_patches(),
        **context,
    }
    return render(request, "firmware/update.html", context, status=status)

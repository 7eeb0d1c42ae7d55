"""System Administration > Backup/Restore: download a backup, upload one to restore, automatic backups.

The upload is streamed to disk (wui.uploads), refused early when over
BACKUP_MAX_BYTES, and read by cluster.backup.read(), which refuses a bad file (one it cannot
authenticate, with the cluster's key or the passphrase typed with it) before anything changes. A
backup whose settings this unit cannot take as they are is kept aside (pending) until the operator
chooses Refuse or Restore with the settings converted.
"""

import contextlib

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from cluster import events
from cluster.backup import rules as backup
from cluster.rollout import versions
from wui.text import human_size
from wui.uploads import streamed_upload


def _too_large(request, size):
    size, limit = human_size(size), human_size(settings.BACKUP_MAX_BYTES)
    error = f"The file is too large: the upload is {size}, over the {limit} limit for a backup."
    return _page(request, status=413, error=f"{error} Nothing was changed.")


@require_http_methods(["GET", "POST"])
@streamed_upload(lambda: backup.backup_dir() / "incoming", ".tar.gz", lambda: settings.BACKUP_MAX_BYTES, _too_large)
def backup_restore(request):
    """Backups may hold password hashes: streamed to a 0700 directory, never held in memory."""
    if request.method == "GET":
        return _page(request)
    actions = {"backup": _download, "restore": _upload, "convert": _convert, "refuse": _refuse}
    action = actions.get(request.POST.get("action"))
    if action is None:
        return _page(request, status=400, error="Choose Create Backup File or Restore Configuration.")
    return action(request)


def _download(request):
    include_users = request.POST.get("include_users") == "1"
    passphrase = request.POST.get("passphrase", "")
    try:
        if passphrase:
            passphrase = backup.check_passphrase(passphrase, request.POST.get("passphrase_again", ""))
        data = backup.download(events.Actor.of(request), include_users, passphrase)
    except backup.BackupError as e:
        return _page(request, status=400, error=f"No backup was made. {e}.")
    response = HttpResponse(data, content_type="application/gzip")
    response["Content-Disposition"] = f'attachment; filename="{backup.filename()}"'
    return response


def _upload(request):
    upload = request.FILES.get("backup")
    if upload is None:
        return _page(request, status=400, error="Choose a backup file first.")
    try:
        found = backup.read(upload.temporary_file_path(), passphrase=request.POST.get("passphrase") or None)
    except backup.BackupError as e:
        # The temporary file goes when the request ends.
        return _refused(request, e)
    report = backup.compatibility(found)
    if not report.items:
        return _restore(request, found, convert=False)
    token = backup.keep_pending(found)
    return _page(request, report=report, backup=found, token=token)


def _refused(request, error):
    events.operator_action(events.Actor.of(request), f"Restore refused: {error}")
    return _page(request, status=400, error=f"The backup was refused. {error}. Nothing was changed.")


def _convert(request):
    token = request.POST.get("token")
    try:
        path = backup.pending_path(token)
        found = backup.read(path)
    except (backup.BackupError, FileNotFoundError):
        return _page(request, status=400, error="That uploaded backup is no longer here: upload it again.")
    report = backup.compatibility(found)
    if report.digest != request.POST.get("report"):
        notice = "This unit's configuration changed since the report was shown: check the settings again."
        return _page(request, status=409, report=report, backup=found, token=token, notice=notice)
    response = _restore(request, found, convert=True)
    if response.status_code == 302:
        path.unlink(missing_ok=True)
    return response


def _restore(request, found, convert):
    try:
        generation, report = backup.restore(found, events.Actor.of(request), convert=convert)
    except backup.BackupError as e:
        return _refused(request, e)
    if request.user.get_username() in {u["username"] for u in report.content.get("users") or []}:
        # The operator's own password hash may have been restored: stay logged in, as after a password change.
        update_session_auth_hash(request, get_user_model().objects.get(pk=request.user.pk))
    text = f"Configuration restored from the {found.origin} backup of {found.header['created']}"
    text += f" ({len(report.items)} setting(s) converted)" if report.items else ""
    if not report.changed:
        text += ": nothing changed, the configuration in force already matches it (no node is rebooted)."
    else:
        text += f": now configuration generation {generation.number}."
    if report.target == "cluster" and report.changed:
        text += " The nodes are rebooted one at a time: Cluster Control shows each one."
    messages.success(request, text)
    return redirect("backup_restore")


def _refuse(request):
    with contextlib.suppress(backup.BackupError):  # nothing pending is nothing to forget
        backup.pending_path(request.POST.get("token")).unlink(missing_ok=True)
    events.operator_action(
        events.Actor.of(request), "Restore refused: the backup's incompatible settings were not converted"
    )
    messages.success(request, "Restore refused: nothing was changed.")
    return redirect("backup_restore")


@require_GET
def saved_backup(request, name):
    if not backup.SAVED_NAME.fullmatch(name) or not (backup.backup_dir() / name).is_file():
        raise Http404("No such backup")
    events.operator_action(events.Actor.of(request), f"Automatic backup {name} downloaded")
    return FileResponse(open(backup.backup_dir() / name, "rb"), as_attachment=True, filename=name)


def _page(request, status=200, **context):
    context = {
        "title": "Backup/Restore",
        "origin": backup.local_origin(),
        "running_version": versions.cluster_version(),
        "max_bytes": settings.BACKUP_MAX_BYTES,
        "saved": backup.saved_backups(),
        "interval": settings.BACKUP_INTERVAL,
        "keep": settings.BACKUP_KEEP,
        "min_passphrase": backup.MIN_PASSPHRASE,
        "max_passphrase": backup.MAX_PASSPHRASE,
        **context,
    }
    return render(request, "cluster/backup_restore.html", context, status=status)

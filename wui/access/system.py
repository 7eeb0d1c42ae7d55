"""Backup, restore, software update and reboot: the System Administration commands on the shared address.

A file a script sends (restore, installpatch) is the request's body: it is streamed to disk beside
the WUI's uploads, refused before it is read when its length is over the WUI's limit, and checked by
the same rules as an upload through the WUI.
"""

import tempfile

from django.conf import settings

from cluster import events
from cluster.backup import rules as backup
from cluster.models import Rollout
from cluster.rollout import rules as rollout
from firmware import install, patch
from firmware.install import patch_dir
from wui.access.answers import Failure, File
from wui.text import human_size
from wui.uploads import content_length

CHUNK = 2**20


def body_to_file(call, directory, suffix, limit, what):
    """The request's body in a temporary file under ``directory`` (removed when closed), or Failure 413."""

    def too_large(size):
        return Failure(
            f"The file is too large: the upload is {human_size(size)}, over the {human_size(limit)} limit for {what}.",
            413,
        )

    if content_length(call.request) > limit:
        raise too_large(content_length(call.request))
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    file = tempfile.NamedTemporaryFile(prefix="upload-", suffix=suffix, dir=directory)
    size = 0
    while chunk := call.request.read(CHUNK):
        size += len(chunk)
        if size > limit:
            file.close()
            raise too_large(size)
        file.write(chunk)
    file.flush()
    if size == 0:
        file.close()
        raise Failure(f"Send {what} as the request's body (curl --data-binary @FILE)")
    return file


# --- backup and restore ---------------------------------------------------------------------


def backup_file(call):
    include_users = call.flag("includeusers", default=False)
    if include_users and call.caller.read_only:
        raise Failure("A backup with users holds password hashes: it needs an API key that is not read-only", 403)
    passphrase = call.get("passphrase", "")
    try:
        if passphrase:
            passphrase = backup.check_passphrase(passphrase, passphrase)
        data = backup.download(call.actor, include_users, passphrase)
    except backup.BackupError as exc:
        raise Failure(f"No backup was made. {exc}.") from exc
    return File(data, backup.filename())


def restore(call):
    restore_type = call.integer("Type", low=1)
    with body_to_file(
        call, backup.backup_dir() / "incoming", ".tar.gz", settings.BACKUP_MAX_BYTES, "a backup"
    ) as upload:
        try:
            found = backup.read(upload.name, passphrase=call.get("passphrase") or None)
            report = backup.compatibility(found)
            if report.items and not call.flag("convert", default=False):
                listed = "; ".join(
                    f"{i.setting}: {i.problem} ({i.conversion or 'cannot be converted'})" for i in report.items
                )
                raise backup.BackupError(
                    f"The backup has {len(report.items)} setting(s) this unit cannot take as they are: {listed}. "
                    "Send convert=1 to restore them converted"
                )
            generation, report = backup.restore(found, call.actor, convert=bool(report.items))
        except backup.BackupError as exc:
            events.operator_action(call.actor, f"Restore refused: {exc}")
            raise Failure(f"The backup was refused. {exc}. Nothing was changed.") from exc
    text = f"Configuration restored from the {found.origin} backup of {found.header['created']}"
    if not report.changed:
        text += ": nothing changed, the configuration in force already matches it (no node is rebooted)"
    else:
        text += f": now configuration generation {generation.number}"
    if report.target == "cluster" and report.changed:
        text += "; the nodes are rebooted one at a time: cluster/status shows the reboots under Update"
    return {"Message": text, "Type": restore_type, "Converted": len(report.items)}


# --- software update ------------------------------------------------------------------------


def installpatch(call):
    """Upload, validate and start installing on every node; the answer comes once the update is under way."""
    if (active := Rollout.active()) is not None:
        raise Failure(f"The software update was refused: {active.busy}.")
    with body_to_file(call, patch_dir() / "incoming", ".patch", settings.FIRMWARE_MAX_BYTES, "a software update") as up:
        try:
            # Verified and kept under its sha256, as the WUI keeps a validated upload.
            manifest = install.accept(up.name, call.flag("allowdowngrade", default=False))
        except (rollout.Refused, patch.PatchError) as exc:  # install.Busy is a rollout.Refused
            raise Failure(f"The software update was refused: {exc}.") from exc
    try:
        update = install.start(manifest.sha256, call.actor)
    except rollout.Refused as exc:
        raise Failure(f"The software update was not started: {exc}.") from exc
    return {
        "Message": (
            f"Version {update.version} transferred and validated; installing on every node. cluster/status "
            "shows the update under Update; once it reads Installed, reboot sends the nodes through a rolling reboot"
        ),
        "Version": update.version,
    }


def restorepatch(call):
    raise Failure(
        "restorepatch is not available: the nodes keep no previous software to go back to; "
        "install the earlier version's patch with installpatch?allowdowngrade=1"
    )


def reboot(call):
    """On the shared address the cluster reboots one node at a time: the rolling reboot of an installed update."""
    try:
        started = rollout.start_rolling(call.actor)
    except rollout.Refused as exc:
        raise Failure(f"No node was rebooted: {exc}") from exc
    return {"Message": f"Rolling reboot to version {started.version} started: one node at a time, the admin node last"}

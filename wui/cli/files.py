"""What goes up and down as files: backup, restore, and software patches (with the rolling reboot)."""

import contextlib
import http.client
import os

import click

from wui.cli import client as api
from wui.cli.base import (
    Group,
    cell,
    emit,
    finish,
    follow,
    no_wait_option,
    pass_state,
    progress,
    say_operation,
    table,
    wait,
)
from wui.cli.client import ApiError

# --- backup and restore --------------------------------------------------------------------


def attachment_name(headers):
    """The file name the API suggests, reduced to a plain name in the current directory."""
    disposition = headers.get("Content-Disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename":
            value = os.path.basename(value.strip().strip('"'))
            if value not in ("", ".", ".."):
                return value
    return "flotilla-backup"


def save(response, file):
    """The answer's body written to ``file``: beside it first, then moved over it whole, so that a
    broken download never leaves half a backup. Returns the bytes written."""
    length = response.headers.get("Content-Length")
    partial, size = f"{file}.part", 0
    try:
        with open(partial, "wb") as out, progress(int(length) if length else None, "Downloading the backup") as bar:
            while True:
                try:
                    chunk = response.read(api.CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    reason = str(exc) or type(exc).__name__
                    raise ApiError(f"The download broke off after {size} bytes: {reason}", api.UNREACHABLE) from None
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
                bar.update(len(chunk))
        if length and size != int(length):
            raise ApiError(f"The download broke off after {size} of {length} bytes", api.UNREACHABLE)
        os.replace(partial, file)
    except OSError as exc:  # the local side: no room, no permission
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise click.FileError(file, exc.strerror or str(exc)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return size


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, writable=True))
@click.option("--include-users", is_flag=True, help="Include the users (with their password hashes).")
@click.option("--passphrase", envvar="FLOTILLA_BACKUP_PASSPHRASE", help="Encrypt the backup with it.")
@pass_state
def backup(state, file, include_users, passphrase):
    """Download a backup of the cluster to FILE (default: the name the cluster gives it)."""
    if passphrase:
        body = {"include_users": include_users, "passphrase": passphrase}
        response = state.client.open("POST", "/backup", json_body=body)
    else:
        response = state.client.open("GET", "/backup", query={"include_users": 1 if include_users else None})
    with response:
        file = file or attachment_name(response.headers)
        size = save(response, file)
    emit(state, {"file": file, "size": size}, lambda d: click.echo(f"Backup saved to {d['file']} ({d['size']} bytes)."))


def send_file(state, path, field, filename, form):
    """Upload the file with a progress bar (bytes sent, on stderr)."""
    size = os.path.getsize(filename)
    with progress(size, f"Uploading {os.path.basename(filename)}") as bar:
        return state.client.upload(path, field, filename, form, progress=bar.update)


upload_file = click.Path(exists=True, dir_okay=False, readable=True)


@click.command()
@click.argument("file", type=upload_file)
@click.option("--passphrase", envvar="FLOTILLA_BACKUP_PASSPHRASE", help="The passphrase the backup was made with.")
@click.option("--convert", is_flag=True, help="Restore a backup of another kind of unit, converting it.")
@no_wait_option
@pass_state
def restore(state, file, passphrase, convert, no_wait):
    """Restore the cluster from a backup FILE."""
    form = {}
    if passphrase:
        form["passphrase"] = passphrase
    if convert:
        form["convert"] = "1"
    follow(state, send_file(state, "/restore", "backup", file, form), no_wait)


# --- software ------------------------------------------------------------------------------


@click.group(cls=Group)
def software():
    """Software updates and the rolling reboot."""


@software.command("show")
@pass_state
def software_show(state):
    """The running versions, the patches kept, and the rollout under way."""

    def human(s):
        click.echo(f"Running versions: {cell(s.get('running_versions'))}")
        click.echo("Patches kept:")
        table(s.get("kept") or [], [("VERSION", "version"), ("SHA256", "sha256"), ("SIZE", "size")])
        if rollout := s.get("rollout"):
            click.echo(
                f"Update to version {rollout.get('version')}: {rollout.get('state_text') or rollout.get('state')}"
            )
            if message := (rollout.get("operation") or {}).get("message"):
                click.echo(message)
            sent = lambda n: f"{n.get('sent')} of {n.get('size')}"  # noqa: E731
            table(
                rollout.get("nodes") or [],
                [("NODE", "node"), ("STATE", "state"), ("SENT", sent), ("MESSAGE", "message")],
            )

    emit(state, state.client.get("/software"), human)


def upload_patch(state, file, allow_downgrade):
    form = {"allow_downgrade": "1"} if allow_downgrade else {}
    return send_file(state, "/software", "patch", file, form).body


def say_kept(patch):
    click.echo(f"Version {patch.get('version')} transferred and validated (sha256 {patch.get('sha256')}).")


downgrade_option = click.option("--allow-downgrade", is_flag=True, help="Accept a version older than the running one.")


@software.command("upload")
@click.argument("file", type=upload_file)
@downgrade_option
@pass_state
def software_upload(state, file, allow_downgrade):
    """Transfer and validate a patch FILE (install it with `software install`)."""
    emit(state, upload_patch(state, file, allow_downgrade), say_kept)


@software.command("install")
@click.argument("sha256")
@no_wait_option
@pass_state
def software_install(state, sha256, no_wait):
    """Send, verify and install a kept patch (by its SHA256) on every node; reboot them onto it after."""
    follow(state, state.client.call("POST", "/software/install", json_body={"sha256": sha256}), no_wait)


@software.command("update")
@click.argument("file", type=upload_file)
@downgrade_option
@no_wait_option
@pass_state
def software_update(state, file, allow_downgrade, no_wait):
    """Upload a patch FILE and install it: the whole software update."""
    patch = upload_patch(state, file, allow_downgrade)
    if not state.json:
        say_kept(patch)
    follow(state, state.client.call("POST", "/software/install", json_body={"sha256": patch["sha256"]}), no_wait)


@software.command("rolling-reboot")
@no_wait_option
@pass_state
def software_rolling_reboot(state, no_wait):
    """Reboot every node, one at a time, each drained first and back in rotation before the next."""
    follow(state, state.client.call("POST", "/software/rolling-reboot"), no_wait)


@software.command("resume")
@no_wait_option
@pass_state
def software_resume(state, no_wait):
    """Resume a halted rolling reboot, and follow it to its end."""
    op = state.client.call("POST", "/software/resume").body
    if no_wait:
        emit(state, op, say_operation)
    else:
        finish(state, wait(state, op))


@software.command("cancel")
@pass_state
def software_cancel(state):
    """Cancel the rollout under way: no further node is taken out."""
    emit(state, state.client.call("POST", "/software/cancel").body, say_operation)

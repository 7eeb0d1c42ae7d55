"""Firmware slots: a received patch is staged, installed in the inactive slot, activated at boot."""

import hashlib
import json
import os
import re
import shutil
import tarfile

from nodes.agent.formats import UnsafeMember, check_tar_member
from nodes.agent.state import AgentError, append_log, path, read_json, write_json

PATCH_NAME = re.compile(r"[0-9a-f]{64}\.patch")
MAX_MANIFEST = 8 * 2**20
# The agent in a slot, as a patch carries it: the one-file agent (build.AGENT_PAYLOAD), or the
# single module of versions before the agent was a package.
SLOT_AGENTS = (("bin", "flotilla-agent"), ("nodes", "agent.py"))


def firmware_stage(name, sha256):
    """Check a received patch and unpack it beside the slots, ready to install; nothing runs it yet.

    The control plane has checked the signature; here the node checks that it
    received exactly that file and that every payload file matches the manifest.
    Staging on every node first lets the control plane install on all of them or on none.
    """
    if not PATCH_NAME.fullmatch(name) or name != f"{sha256}.patch":
        raise AgentError("the patch name must be its sha256 followed by .patch")
    staged = read_json("staged.json", {})
    if staged.get("sha256") == sha256 and os.path.isdir(path("slots", ".staged")):
        return {"version": staged["version"], "staged": True}
    received = path("incoming", name)
    if not os.path.isfile(received):
        raise AgentError(f"no patch {name} has been received")
    try:
        if _sha256_of(received) != sha256:
            raise AgentError("checksum mismatch: the patch was damaged in transfer")
        staging = path("slots", ".staged")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            manifest = _unpack(received, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        os.unlink(received)  # a refused or staged patch is not kept twice
    write_json("staged.json", {"sha256": sha256, "version": manifest["version"]})
    append_log("info", f"Version {manifest['version']} received and verified")
    return {"version": manifest["version"], "staged": True}


def firmware_install(name, sha256):
    """Install a patch into the inactive slot; the next boot makes it active. Stages it first if needed."""
    slots = read_json("slots.json", {"active": "a"})
    staged = read_json("staged.json", {})
    if staged.get("sha256") != sha256:
        if slots.get("pending_sha256") == sha256:
            return {"slot": slots["pending"], "version": slots["pending_version"], "pending": True}
        firmware_stage(name, sha256)
        staged = read_json("staged.json", {})
    target = "b" if slots["active"] == "a" else "a"
    shutil.rmtree(path("slots", target), ignore_errors=True)
    os.replace(path("slots", ".staged"), path("slots", target))
    pending = {"pending": target, "pending_version": staged["version"], "pending_sha256": sha256}
    write_json("slots.json", {"active": slots["active"], **pending})
    os.unlink(path("staged.json"))
    append_log("info", f"Version {staged['version']} installed in slot {target}: active after the next reboot")
    return {"slot": target, "version": staged["version"], "pending": True}


def firmware_discard():
    """Forget a staged or installed-but-not-active patch: the next boot runs what runs now."""
    shutil.rmtree(path("slots", ".staged"), ignore_errors=True)
    if os.path.exists(path("staged.json")):
        os.unlink(path("staged.json"))
    slots = read_json("slots.json", {})
    if slots.get("pending"):
        write_json("slots.json", {"active": slots["active"]})
        append_log("info", f"Version {slots['pending_version']} discarded: it will not be activated")
    return {"pending": False}


def _sha256_of(file):
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(patch, staging):
    found, manifest = {}, None
    try:
        with tarfile.open(patch, "r:gz") as tar:
            for member in tar:
                _check_member(member)
                if member.name == "manifest.json":
                    manifest = json.loads(tar.extractfile(member).read(MAX_MANIFEST))
                elif member.name.startswith("payload/"):
                    found[member.name] = _write_payload(tar.extractfile(member), staging, member.name)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise AgentError(f"not a readable firmware patch: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise AgentError("the patch has no manifest")
    listed = {k: (v.get("sha256"), v.get("size")) for k, v in manifest["files"].items()}
    if listed != found:
        wrong = sorted(set(listed.items()) ^ set(found.items()))
        raise AgentError(f"payload does not match the manifest: {wrong[0][0]}")
    return manifest


def _check_member(member):
    try:
        parts = check_tar_member(member, "patch")
    except UnsafeMember as exc:
        raise AgentError(f"refused {exc}: only plain files inside the patch are allowed") from None
    if member.name not in ("manifest.json", "manifest.sig") and parts[0] != "payload":
        raise AgentError(f"refused member {member.name!r}: not part of the patch format")


def _write_payload(source, staging, name):
    dest = os.path.join(staging, name.removeprefix("payload/"))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(dest, "wb") as out:
        while chunk := source.read(2**20):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def activate_pending_slot():
    slots = read_json("slots.json", {})
    if not slots.get("pending"):
        return
    slot = slots["pending"]
    agents = (path("slots", slot, *parts) for parts in SLOT_AGENTS)
    agent = next((a for a in agents if os.path.isfile(a)), None)
    if agent and os.geteuid() == 0:
        # The agent of the new slot is what the control plane runs from now on.
        os.makedirs(path("bin"), exist_ok=True)
        shutil.copyfile(agent, path("bin", ".flotilla-agent.new"))
        os.chmod(path("bin", ".flotilla-agent.new"), 0o755)
        os.replace(path("bin", ".flotilla-agent.new"), path("bin", "flotilla-agent"))
    write_json("version.json", {"version": slots["pending_version"], "slot": slot})
    write_json("slots.json", {"active": slot})
    append_log("warning", f"Activated version {slots['pending_version']} from slot {slot}")

#!/usr/bin/python3 -IS
"""Flotilla node agent: the only program the control plane runs on a node.

Run over SSH as ``flotilla-agent VERB [ARGS]``. Every verb prints exactly one
JSON document on stdout; a failure prints ``{"error": ...}`` and exits
non-zero. ``serve`` keeps one process per SSH session and answers JSON lines
(``{"verb": ..., "args": [...]}``) so that a busy control plane does not pay
interpreter start-up per command.

Standard library only, and no Django: start-up time bounds every push. The
node-local WUI imports this module as a library to read and write the same
state, so everything here is also a plain function.
"""

import base64
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import platform
import re
import secrets
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time

VERSION = "1.0.0"
MAX_MESSAGE = 1000
JOIN_WINDOW = 600  # seconds a unit waits to join after "Add to Cluster"
JOIN_ATTEMPTS = 5  # wrong codes before the offer is withdrawn
HARDWARE_KEYS = ("cpu_count", "memory_mib", "disk_gib", "virtual")
SCHEMAS = (1,)  # configuration document schemas this version can apply


class AgentError(Exception):
    """A refusal or failure, reported to the caller as a JSON error."""


class Malformed(AgentError):
    """The request itself is wrong (not a guess at the code): refused before anything is judged or counted."""


class NotWaiting(AgentError):
    """The unit is in no state to be joined by this request (no offer, or already in or joining a cluster)."""


def node_home():
    home = os.environ.get("NODE_HOME")
    if not home or not os.path.isdir(home):
        raise AgentError("NODE_HOME is not set to an existing directory")
    return home


def _path(*parts):
    return os.path.join(node_home(), *parts)


def read_json(name, default=None):
    try:
        with open(_path(name), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json(name, document):
    """Replace a state file atomically: a crash leaves the old or the new one."""
    home = node_home()
    _atomic_write(os.path.join(home, name), json.dumps(document, sort_keys=True, indent=1).encode(), 0o644)


def _atomic_write(path, data, mode):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        _give_to_node_owner(node_home(), tmp)
        os.replace(tmp, path)
        _fsync_dir(directory)  # the rename itself must survive a power loss once we have answered
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _give_to_node_owner(home, path):
    # The node-local WUI runs as root; the agent runs as the node's own user
    # and must still be able to replace what the WUI wrote.
    if os.geteuid() == 0:
        st = os.stat(home)
        os.chown(path, st.st_uid, st.st_gid)


_lock_depth = threading.local()


@contextlib.contextmanager
def state_lock():
    """Hold the unit's membership and join state still while it is read, judged and written.

    An flock on a file in NODE_HOME, so it holds across the node-local WUI's
    threads, its processes and the agent run over SSH. Re-entrant within a
    thread: a second flock on a new descriptor in the same thread would wait
    for itself.
    """
    if getattr(_lock_depth, "n", 0):
        _lock_depth.n += 1
        try:
            yield
        finally:
            _lock_depth.n -= 1
        return
    home = node_home()
    path = os.path.join(home, "state.lock")
    # Read-only is enough for flock, so the agent (the node's user) can lock a file the WUI (root) made.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        _give_to_node_owner(home, path)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _lock_depth.n = 1
        try:
            yield
        finally:
            _lock_depth.n = 0
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


def append_log(level, message):
    line = json.dumps({"time": time.time(), "level": level, "message": message})
    path = _path("node.log")
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    _give_to_node_owner(node_home(), path)


def read_log(limit=200):
    try:
        with open(_path("node.log"), encoding="utf-8") as f:
            lines = f.readlines()[-limit:]
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in reversed(lines) if line.strip()]


# --- facts -----------------------------------------------------------------


def _sys_net(device, name):
    try:
        with open(f"/sys/class/net/{device}/{name}", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def interface_facts(spec):
    """Facts of one interface; spec names the kernel device that backs it."""
    device = spec.get("device", spec["name"])
    speed = _sys_net(device, "speed")
    mtu = _sys_net(device, "mtu")
    return {
        "name": spec["name"],
        "device": device,
        "mac": _sys_net(device, "address") or "",
        "speed_mbps": int(speed) if speed and speed.lstrip("-").isdigit() and int(speed) > 0 else None,
        "duplex": _sys_net(device, "duplex") or "unknown",
        "mtu": int(mtu) if mtu and mtu.isdigit() else None,
        "addresses": list(spec.get("addresses", [])),
    }


def _meminfo_kib():
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _is_virtual():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        return False


def facts():
    node = read_json("node.json", {})
    specs = node.get("interfaces") or [{"name": d} for d in sorted(os.listdir("/sys/class/net"))]
    st = os.statvfs(node_home())
    measured = {
        "cpu_count": os.cpu_count(),
        "memory_mib": _meminfo_kib() // 1024,
        "disk_gib": round(st.f_blocks * st.f_frsize / 2**30),
        "virtual": _is_virtual(),
    }
    # node.json may describe the machine's hardware (a virtual unit's assigned resources).
    hardware = {k: node.get("hardware", {}).get(k, v) for k, v in measured.items()}
    return {
        "hostname": node.get("hostname") or socket.gethostname(),
        **hardware,
        "machine": platform.machine(),
        "interfaces": [_with_local_choices(interface_facts(s)) for s in specs],
        "version": running_version(),
        "host_key": host_key(),
        "ssh_user": node.get("ssh_user", ""),
        "ssh_port": node.get("ssh_port", 22),
    }


def _with_local_choices(interface):
    """Add what the unit's own Network Setup chose for this interface (a node-local setting)."""
    own = read_json("local_network.json", {}).get("interfaces", {}).get(interface["name"], {})
    if "use_for_default_gateway" in own:
        interface["use_for_default_gateway"] = bool(own["use_for_default_gateway"])
    return interface


def host_key():
    path = read_json("node.json", {}).get("host_key_file", "/etc/ssh/ssh_host_ed25519_key.pub")
    try:
        with open(path, encoding="ascii") as f:
            return " ".join(f.read().split()[:2])
    except OSError:
        return ""


def running_version():
    return read_json("version.json", {}).get("version", VERSION)


def membership(now=None):
    """What this unit is; a join the cluster left unfinished past JOIN_WINDOW is undone here.

    Every reader of the membership (health checks, the unit's own pages, boot)
    comes through here, so a unit stranded half-joined by a control plane that
    died does not stay so; the common case costs one file read.
    """
    state = read_json("membership.json", {"mode": "standalone"})
    if state.get("mode") != "joining" or not _join_lapsed(state, now):
        return state
    with state_lock():
        state = read_json("membership.json", {"mode": "standalone"})
        if state.get("mode") == "joining" and _join_lapsed(state, now):
            _forget_join(state, f"Join not completed by the cluster within {JOIN_WINDOW} s: standalone again")
            state = {"mode": "standalone"}
    return state


def _join_lapsed(state, now):
    now = time.time() if now is None else now
    accepted_at = state.get("accepted_at")
    if not isinstance(accepted_at, (int, float)):
        # Written by an older version that did not record the accept: the file's time is the accept's.
        try:
            accepted_at = os.stat(_path("membership.json")).st_mtime
        except FileNotFoundError:
            return False
    # A clock set back must not stretch the window either.
    return abs(now - accepted_at) > JOIN_WINDOW


def traffic(now=None):
    standalone = membership(now).get("mode") == "standalone"
    return read_json("traffic.json", {"accepting": standalone, "active_connections": 0, "booted_at": 0})


def status(now=None):
    config = read_json("config.json", {})
    mode = membership(now).get("mode", "standalone")
    flows = traffic(now)
    return {
        "ok": True,
        "time": time.time() if now is None else now,
        "version": running_version(),
        "mode": mode,
        "accepting": flows.get("accepting", False),
        "active_connections": flows.get("active_connections", 0),
        "booted_at": flows.get("booted_at", 0),
        "generation": config.get("generation", 0),
        "schemas": list(SCHEMAS),
    }


def boot():
    """At start-up a unit takes no traffic until the control plane confirms its state."""
    _activate_pending_slot()
    standalone = membership().get("mode") == "standalone"
    write_json("traffic.json", {"accepting": standalone, "active_connections": 0, "booted_at": time.time()})
    append_log("info", f"Unit started (version {running_version()})")
    return status()


def set_accepting(value):
    """enable: take new connections; drain: take no new ones, let open ones finish."""
    if value not in ("on", "off"):
        raise AgentError("accepting must be 'on' or 'off'")
    state = traffic()
    if state.get("accepting") != (value == "on"):
        state["accepting"] = value == "on"
        write_json("traffic.json", state)
        append_log("info", "Taking new connections" if value == "on" else "Draining: no new connections")
    return status()


def reboot():
    """Ask the machine to restart this unit's services (the init system acts on the request)."""
    write_json("reboot.request", {"time": time.time()})
    append_log("warning", "Reboot requested")
    return {"rebooting": True}


# --- firmware slots ----------------------------------------------------------

PATCH_NAME = re.compile(r"[0-9a-f]{64}\.patch")
MAX_MANIFEST = 8 * 2**20


def firmware_stage(name, sha256):
    """Check a received patch and unpack it beside the slots, ready to install; nothing runs it yet.

    The control plane has checked the signature; here the node checks that it
    received exactly that file and that every payload file matches the manifest.
    Staging on every node first lets the control plane install on all of them or on none.
    """
    if not PATCH_NAME.fullmatch(name) or name != f"{sha256}.patch":
        raise AgentError("the patch name must be its sha256 followed by .patch")
    staged = read_json("staged.json", {})
    if staged.get("sha256") == sha256 and os.path.isdir(_path("slots", ".staged")):
        return {"version": staged["version"], "staged": True}
    path = _path("incoming", name)
    if not os.path.isfile(path):
        raise AgentError(f"no patch {name} has been received")
    try:
        if _sha256_of(path) != sha256:
            raise AgentError("checksum mismatch: the patch was damaged in transfer")
        staging = _path("slots", ".staged")
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            manifest = _unpack(path, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    finally:
        os.unlink(path)  # a refused or staged patch is not kept twice
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
    shutil.rmtree(_path("slots", target), ignore_errors=True)
    os.replace(_path("slots", ".staged"), _path("slots", target))
    pending = {"pending": target, "pending_version": staged["version"], "pending_sha256": sha256}
    write_json("slots.json", {"active": slots["active"], **pending})
    os.unlink(_path("staged.json"))
    append_log("info", f"Version {staged['version']} installed in slot {target}: active after the next reboot")
    return {"slot": target, "version": staged["version"], "pending": True}


def firmware_discard():
    """Forget a staged or installed-but-not-active patch: the next boot runs what runs now."""
    shutil.rmtree(_path("slots", ".staged"), ignore_errors=True)
    if os.path.exists(_path("staged.json")):
        os.unlink(_path("staged.json"))
    slots = read_json("slots.json", {})
    if slots.get("pending"):
        write_json("slots.json", {"active": slots["active"]})
        append_log("info", f"Version {slots['pending_version']} discarded: it will not be activated")
    return {"pending": False}


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(path, staging):
    found, manifest = {}, None
    try:
        with tarfile.open(path, "r:gz") as tar:
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
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts or "" in parts or not member.isfile():
        raise AgentError(f"refused member {member.name!r}: only plain files inside the patch are allowed")
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


def _activate_pending_slot():
    slots = read_json("slots.json", {})
    if not slots.get("pending"):
        return
    slot = slots["pending"]
    agent = _path("slots", slot, "nodes", "agent.py")
    if os.path.isfile(agent) and os.geteuid() == 0:
        # The agent of the new slot is what the control plane runs from now on.
        os.makedirs(_path("bin"), exist_ok=True)
        shutil.copyfile(agent, _path("bin", ".flotilla-agent.new"))
        os.chmod(_path("bin", ".flotilla-agent.new"), 0o755)
        os.replace(_path("bin", ".flotilla-agent.new"), _path("bin", "flotilla-agent"))
    write_json("version.json", {"version": slots["pending_version"], "slot": slot})
    write_json("slots.json", {"active": slot})
    append_log("warning", f"Activated version {slots['pending_version']} from slot {slot}")


# --- cluster membership ----------------------------------------------------

CODE_FORM = re.compile(r"([A-Z2-7]{4})-?([A-Z2-7]{4})")  # base32 of 5 random bytes, as offer_join makes it


def offer_join():
    """Add to Cluster: wait a limited time for a cluster to claim this unit with a one-time code."""
    with state_lock():
        if membership().get("mode") != "standalone":
            raise AgentError("this unit is already in a cluster")
        raw = base64.b32encode(secrets.token_bytes(5)).decode()
        offer = {"code": f"{raw[:4]}-{raw[4:]}", "expires_at": time.time() + JOIN_WINDOW, "attempts": 0}
        write_json("join.json", offer)
        append_log("info", "Waiting to join a cluster")
    return {**offer, "fingerprint": fingerprint(host_key())}


def join_offer():
    offer = read_json("join.json")
    if not offer or offer.get("expires_at", 0) < time.time() or offer.get("withdrawn"):
        return None
    return {**offer, "fingerprint": fingerprint(host_key())}


def cancel_join():
    with state_lock():
        if os.path.exists(_path("join.json")):
            os.unlink(_path("join.json"))
    return {"waiting": False}


def join_code(code):
    """The code in its one written form; anything that cannot be a code is refused with the reason.

    A malformed code is not a guess and is not counted against the offer; the
    reasons never repeat the value (the caller may quote a short prefix).
    """
    if not isinstance(code, str):
        raise Malformed(f"the join code must be text, not {_json_kind(code)}")
    text = code.strip()
    if not 8 <= len(text) <= 9:
        raise Malformed(f"the join code has {len(text)} characters: a code is like ABCD-EFGH (9 characters)")
    if not text.isascii():
        raise Malformed("the join code has a character that is not ASCII: a code uses only A-Z, 2-7 and '-'")
    match = CODE_FORM.fullmatch(text.upper())
    if not match:
        raise Malformed("the join code must be 4 of A-Z and 2-7, a '-' and 4 more, like ABCD-EFGH")
    return f"{match[1]}-{match[2]}"


def _json_kind(value):
    kinds = {bool: "true or false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _code_digest(code):
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def _is_this_join(state, code):
    return hmac.compare_digest(state.get("code_sha256", ""), _code_digest(code))


def check_join_code(code, now=None):
    """Refuse unless this unit waits to join and the code is right; wrong codes are counted.

    While the unit is joining with this very code (accepted, not yet told by
    the cluster that it is a member), the answer is the same as before the
    accept: a control plane that lost its worker may ask again. Returns the
    membership state.
    """
    code = join_code(code)
    now = time.time() if now is None else now
    # Read, judge and count under one lock: concurrent wrong codes are each counted, and never more than allowed.
    with state_lock():
        state = membership(now)
        mode = state.get("mode", "standalone")
        if mode == "joining":
            if not _is_this_join(state, code):
                raise NotWaiting(
                    f"this unit is not waiting to join: it is joining the cluster at {state.get('shared_address')} "
                    "with another code"
                )
            return state
        if mode != "standalone":
            raise NotWaiting(f"this unit is not waiting to join: it is in the cluster at {state.get('shared_address')}")
        offer = read_json("join.json")
        if not offer or offer.get("withdrawn"):
            raise NotWaiting("the unit is not waiting to join a cluster (click Add to Cluster on the unit first)")
        if offer["expires_at"] < now:
            raise AgentError("the join code has expired (click Add to Cluster on the unit again)")
        if not hmac.compare_digest(code, offer["code"]):
            offer["attempts"] = offer.get("attempts", 0) + 1
            offer["withdrawn"] = offer["attempts"] >= JOIN_ATTEMPTS
            write_json("join.json", offer)
            if offer["withdrawn"]:
                append_log("warning", f"{JOIN_ATTEMPTS} wrong join codes: no longer waiting to join a cluster")
            raise AgentError("the join code is wrong")
        return state


def accept_join(code, cluster_key, shared_address, now=None):
    """Checks the one-time code, authorises the cluster's key and tells who this unit is.

    Asking again with the same code, key and shared address while the unit is
    joining gives the same answer; anything else is refused.
    """
    code = join_code(code)
    now = time.time() if now is None else now
    with state_lock():
        state = check_join_code(code, now)
        key = _public_key(cluster_key)
        shared = _shared_address(shared_address)
        if state.get("mode") == "joining":
            if state.get("cluster_key") != key:
                raise AgentError("this unit is joining a cluster with another SSH key: it keeps that one")
            if state.get("shared_address") != shared:
                raise AgentError(f"this unit is joining the cluster at {state.get('shared_address')}, not {shared}")
        else:
            # The membership is written first: whatever a crash leaves, the key to forget is on record.
            state = {
                "mode": "joining",
                "shared_address": shared,
                "cluster_key": key,
                "code_sha256": _code_digest(code),
                "accepted_at": now,
            }
            write_json("membership.json", state)
            _new_configuration_source()
            append_log("info", f"Join code accepted: joining the cluster at {shared}")
        authorize_key(cluster_key)
        if os.path.exists(_path("join.json")):
            os.unlink(_path("join.json"))
    return facts()


def abort_join(code, now=None):
    """The cluster undoes a join it did not finish: the unit forgets the cluster's key and is standalone.

    A standalone unit answers standalone whatever the code: there is nothing to
    undo, and one answer for every code tells nothing about a waiting offer's.
    A member is refused: leaving a cluster is Delete on the shared address.
    """
    code = join_code(code)
    with state_lock():
        state = membership(now)
        mode = state.get("mode", "standalone")
        if mode == "standalone":
            return {"mode": "standalone"}
        if mode != "joining":
            raise NotWaiting(
                f"this unit is a member of the cluster at {state.get('shared_address')}, not joining it: "
                "delete the node on the shared address instead"
            )
        if not _is_this_join(state, code):
            raise AgentError("the join code is not the one this unit is joining with")
        _forget_join(state, f"Join undone by the cluster at {state.get('shared_address')}: standalone again")
    return {"mode": "standalone"}


def _forget_join(state, message):
    """Back to standalone from joining: the key goes before the record of it, so a crash never strands the key."""
    if state.get("cluster_key"):
        unauthorize_key(state["cluster_key"])
    if os.path.exists(_path("join.json")):
        os.unlink(_path("join.json"))  # the used code must not be usable again
    write_json("membership.json", {"mode": "standalone"})
    append_log("warning", message)


def _public_key(line):
    """The key's type and body, as authorized_keys compares them; a comment is not part of the key."""
    if not isinstance(line, str) or len(line) > 1000 or not _valid_public_key(line):
        raise Malformed("the cluster's SSH key is not a valid ed25519 public key")
    return " ".join(line.split()[:2])


def _shared_address(value):
    try:
        if not isinstance(value, str):  # IPv4Address would also take a number
            raise ValueError(value)
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError as exc:
        raise Malformed("the shared address is not an IPv4 address") from exc


def _valid_public_key(line):
    parts = str(line).split()
    if len(parts) < 2 or parts[0] != "ssh-ed25519":
        return False
    try:
        return len(base64.b64decode(parts[1], validate=True)) == 51
    except ValueError:
        return False


def _authorized_keys_path():
    return _path(".ssh", "authorized_keys")


def _authorized_lines():
    try:
        with open(_authorized_keys_path(), encoding="ascii") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def authorize_key(key_line):
    path = _authorized_keys_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = " ".join(key_line.split()[:2])
    with state_lock():
        lines = _authorized_lines()
        if key not in (" ".join(line.split()[:2]) for line in lines):
            lines.append(key_line.strip())
            _write_private(path, "".join(line + "\n" for line in lines))


def unauthorize_key(key):
    """Remove exactly this key's lines; every other key stays as it was."""
    with state_lock():
        lines = _authorized_lines()
        kept = [line for line in lines if " ".join(line.split()[:2]) != key]
        if kept != lines:
            _write_private(_authorized_keys_path(), "".join(line + "\n" for line in kept))


def _write_private(path, text):
    _atomic_write(path, text.encode(), 0o600)


def set_membership(mode, shared_address):
    if mode not in ("admin", "member"):
        raise AgentError("mode must be 'admin' or 'member'")
    with state_lock():
        write_json("membership.json", {"mode": mode, "shared_address": shared_address})
        return status()


def leave_cluster():
    """Delete: the unit becomes standalone again and forgets the cluster's key."""
    with state_lock():
        path = _authorized_keys_path()
        write_json("membership.json", {"mode": "standalone"})
        _new_configuration_source()
        append_log("warning", "Removed from the cluster: now a standalone unit")
        if os.path.exists(path):
            _write_private(path, "")
    return {"mode": "standalone"}


# --- configuration -----------------------------------------------------------


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _new_configuration_source():
    """Joining or leaving a cluster changes who numbers the generations: the unit's own WUI or the
    cluster. The applied document is kept aside as the previous one, so the new source's first
    generation applies whatever its number."""
    if os.path.exists(_path("config.json")):
        os.replace(_path("config.json"), _path("config.prev.json"))


def apply_config(text):
    """Apply a configuration document atomically; the previous one is kept."""
    try:
        envelope = json.loads(text)
        body, generation, digest = envelope["config"], envelope["generation"], envelope["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentError(f"not a configuration document: {exc}") from exc
    if not isinstance(generation, int) or isinstance(generation, bool) or generation < 1:
        raise AgentError("generation must be a positive whole number")
    if not isinstance(body, dict):
        raise AgentError("the configuration must be a JSON object")
    if body.get("schema") not in SCHEMAS:
        raise AgentError(
            f"configuration schema {body.get('schema')!r} is not understood by version {running_version()} "
            f"(it understands {', '.join(map(str, SCHEMAS))}): update this node's software first"
        )
    _check_fields(body)
    if hashlib.sha256(canonical(body)).hexdigest() != digest:
        raise AgentError("checksum mismatch: the document was damaged in transit")
    current = read_json("config.json", {})
    if current and hashlib.sha256(canonical(current.get("config"))).hexdigest() != current.get("sha256"):
        current = {}  # a damaged local copy is replaced, whatever its generation
    if generation < current.get("generation", 0):
        raise AgentError(f"generation {generation} is older than the applied {current['generation']}")
    if generation == current.get("generation") and digest == current.get("sha256"):
        return {"generation": generation, "changed": False}
    if current:
        write_json("config.prev.json", current)
    write_json("config.json", envelope)
    append_log("info", f"Applied configuration generation {generation}")
    return {"generation": generation, "changed": True}


def _check_fields(body):
    """Refuse a document whose fields are not what this version can apply."""
    cluster = body.get("cluster")
    if not isinstance(cluster, dict):
        raise AgentError("configuration field 'cluster' is missing")
    if not (isinstance(cluster.get("virtual_id"), int) and 1 <= cluster["virtual_id"] <= 255):
        raise AgentError("configuration field 'cluster.virtual_id' must be 1-255")
    if not (isinstance(cluster.get("drain_time"), int) and 1 <= cluster["drain_time"] <= 600):
        raise AgentError("configuration field 'cluster.drain_time' must be 1-600")
    for key in ("nodes", "virtual_services"):
        if not isinstance(body.get(key), list):
            raise AgentError(f"configuration field {key!r} must be a list")


def fingerprint(key_line):
    if not key_line:
        return ""
    digest = hashlib.sha256(base64.b64decode(key_line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def log(message):
    """Record an operator's message in the node's own log (used by tests of quoting)."""
    if not isinstance(message, str) or not message or len(message) > MAX_MESSAGE:
        raise AgentError(f"message must be 1-{MAX_MESSAGE} characters")
    append_log("info", message)
    return {"logged": message}


VERBS = {
    "facts": (facts, 0),
    "status": (status, 0),
    "log": (log, 1),
    "boot": (boot, 0),
    "accepting": (set_accepting, 1),
    "reboot": (reboot, 0),
    "membership": (set_membership, 2),
    "leave-cluster": (leave_cluster, 0),
    "apply-config": (apply_config, 1),
    "offer-join": (offer_join, 0),
    "firmware-stage": (firmware_stage, 2),
    "firmware-install": (firmware_install, 2),
    "firmware-discard": (firmware_discard, 0),
}


def call(verb, args):
    if verb not in VERBS:
        raise AgentError(f"unknown verb {verb!r}; known: {', '.join(sorted(VERBS))}")
    func, nargs = VERBS[verb]
    if len(args) != nargs:
        raise AgentError(f"{verb} takes {nargs} argument(s), got {len(args)}")
    return func(*args)


def serve(stdin, stdout):
    """Answer JSON-line requests until the channel closes."""
    for line in stdin:
        try:
            request = json.loads(line)
            reply = {"result": call(request["verb"], list(request.get("args", [])))}
        except (AgentError, ValueError, KeyError, TypeError, OSError) as exc:
            reply = {"error": str(exc)}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()


def main(argv):
    if argv[:1] == ["serve"]:
        serve(sys.stdin, sys.stdout)
        return 0
    if not argv:
        print(json.dumps({"error": "usage: flotilla-agent VERB [ARGS]"}))
        return 2
    try:
        result = call(argv[0], argv[1:])
    except (AgentError, OSError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

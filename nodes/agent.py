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
import hashlib
import hmac
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
import time

VERSION = "1.0.0"
MAX_MESSAGE = 1000
JOIN_WINDOW = 600  # seconds a unit waits to join after "Add to Cluster"
JOIN_ATTEMPTS = 5  # wrong codes before the offer is withdrawn
HARDWARE_KEYS = ("cpu_count", "memory_mib", "disk_gib", "virtual")
SCHEMAS = (1,)  # configuration document schemas this version can apply


class AgentError(Exception):
    """A refusal or failure, reported to the caller as a JSON error."""


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


def membership():
    return read_json("membership.json", {"mode": "standalone"})


def traffic():
    standalone = membership().get("mode") == "standalone"
    return read_json("traffic.json", {"accepting": standalone, "active_connections": 0, "booted_at": 0})


def status():
    config = read_json("config.json", {})
    return {
        "ok": True,
        "time": time.time(),
        "version": running_version(),
        "mode": membership().get("mode", "standalone"),
        "accepting": traffic().get("accepting", False),
        "active_connections": traffic().get("active_connections", 0),
        "booted_at": traffic().get("booted_at", 0),
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


def offer_join():
    """Add to Cluster: wait a limited time for a cluster to claim this unit with a one-time code."""
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
    if os.path.exists(_path("join.json")):
        os.unlink(_path("join.json"))
    return {"waiting": False}


def check_join_code(code):
    """Refuse unless this unit waits to join and the code is right; wrong codes are counted."""
    offer = read_json("join.json")
    if not offer or offer.get("withdrawn"):
        raise AgentError("the unit is not waiting to join a cluster (click Add to Cluster on the unit first)")
    if offer["expires_at"] < time.time():
        raise AgentError("the join code has expired (click Add to Cluster on the unit again)")
    if not hmac.compare_digest(str(code).strip().upper(), offer["code"]):
        offer["attempts"] += 1
        offer["withdrawn"] = offer["attempts"] >= JOIN_ATTEMPTS
        write_json("join.json", offer)
        raise AgentError("the join code is wrong")


def accept_join(code, cluster_key, shared_address):
    """Checks the one-time code, authorises the cluster's key and tells who this unit is."""
    check_join_code(code)
    if not _valid_public_key(cluster_key):
        raise AgentError("the cluster's SSH key is not a valid ed25519 public key")
    authorize_key(cluster_key)
    cancel_join()
    write_json("membership.json", {"mode": "joining", "shared_address": shared_address})
    append_log("info", f"Joined the cluster at {shared_address}")
    return facts()


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


def authorize_key(key_line):
    path = _authorized_keys_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    key = " ".join(key_line.split()[:2])
    try:
        with open(path, encoding="ascii") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    if key not in (" ".join(line.split()[:2]) for line in lines):
        lines.append(key_line.strip())
        _write_private(path, "".join(line + "\n" for line in lines))


def _write_private(path, text):
    _atomic_write(path, text.encode(), 0o600)


def set_membership(mode, shared_address):
    if mode not in ("admin", "member"):
        raise AgentError("mode must be 'admin' or 'member'")
    write_json("membership.json", {"mode": mode, "shared_address": shared_address})
    return status()


def leave_cluster():
    """Delete: the unit becomes standalone again and forgets the cluster's key."""
    path = _authorized_keys_path()
    write_json("membership.json", {"mode": "standalone"})
    append_log("warning", "Removed from the cluster: now a standalone unit")
    if os.path.exists(path):
        _write_private(path, "")
    return {"mode": "standalone"}


# --- configuration -----------------------------------------------------------


def canonical(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


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

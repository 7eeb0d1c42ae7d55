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

import json
import os
import platform
import socket
import sys
import tempfile
import time

VERSION = "1.0.0"
MAX_MESSAGE = 1000


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
    data = json.dumps(document, sort_keys=True, indent=1).encode()
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".tmp-")
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.chmod(tmp, 0o644)
        _give_to_node_owner(home, tmp)
        os.replace(tmp, os.path.join(home, name))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    return {
        "hostname": node.get("hostname") or socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "memory_mib": _meminfo_kib() // 1024,
        "disk_gib": round(st.f_blocks * st.f_frsize / 2**30),
        "virtual": _is_virtual(),
        "machine": platform.machine(),
        "interfaces": [interface_facts(s) for s in specs],
        "version": running_version(),
    }


def running_version():
    return read_json("version.json", {}).get("version", VERSION)


def status():
    membership = read_json("membership.json", {"mode": "standalone"})
    traffic = read_json("traffic.json", {"accepting": True, "active_connections": 0})
    return {
        "ok": True,
        "time": time.time(),
        "version": running_version(),
        "mode": membership.get("mode", "standalone"),
        "accepting": traffic.get("accepting", True),
        "active_connections": traffic.get("active_connections", 0),
    }


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

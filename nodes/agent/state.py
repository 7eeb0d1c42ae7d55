"""The unit's state directory (NODE_HOME): its JSON state files, its lock and its log."""

import contextlib
import fcntl
import json
import os
import threading
import time

from nodes.agent.formats import VERSION, atomic_write


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


def path(*parts):
    return os.path.join(node_home(), *parts)


def read_json(name, default=None):
    try:
        with open(path(name), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_json(name, document):
    """Replace a state file atomically: a crash leaves the old or the new one."""
    write_file(path(name), json.dumps(document, sort_keys=True, indent=1).encode(), 0o644)


def write_file(target, data, mode):
    """The atomic write (formats.atomic_write), owned by the node's user like NODE_HOME."""
    atomic_write(target, data, mode, node_owner())


def node_owner():
    # The node-local WUI runs as root; the agent runs as the node's own user
    # and must still be able to replace what the WUI wrote.
    if os.geteuid() == 0:
        st = os.stat(node_home())
        return st.st_uid, st.st_gid
    return None


def give_to_node_owner(target):
    owner = node_owner()
    if owner is not None:
        os.chown(target, *owner)


def running_version():
    return read_json("version.json", {}).get("version", VERSION)


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
    lock = path("state.lock")
    # Read-only is enough for flock, so the agent (the node's user) can lock a file the WUI (root) made.
    fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        give_to_node_owner(lock)
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
    log = path("node.log")
    with open(log, "a", encoding="utf-8") as f:
        f.write(line + "\n")
    give_to_node_owner(log)


def read_log(limit=200):
    try:
        with open(path("node.log"), encoding="utf-8") as f:
            lines = f.readlines()[-limit:]
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in reversed(lines) if line.strip()]

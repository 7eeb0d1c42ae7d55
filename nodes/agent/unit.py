"""The unit's running state: status, traffic, boot, reboot, membership as the cluster sets it."""

import time

from nodes.agent import dataplane
from nodes.agent.firmware import activate_pending_slot
from nodes.agent.formats import SCHEMAS
from nodes.agent.join import membership
from nodes.agent.state import AgentError, append_log, read_json, running_version, state_lock, write_json

MAX_MESSAGE = 1000


def traffic(now=None):
    standalone = membership(now).get("mode") == "standalone"
    return read_json("traffic.json", {"accepting": standalone, "active_connections": 0, "booted_at": 0})


def status(now=None):
    config = read_json("config.json", {})
    mode = membership(now).get("mode", "standalone")
    flows = traffic(now)
    served = dataplane.traffic_stats()
    return {
        "ok": True,
        "time": time.time() if now is None else now,
        "version": running_version(),
        "mode": mode,
        "accepting": flows.get("accepting", False),
        "active_connections": served["connections"],
        "connections": served["connections"],
        "requests_per_second": served["requests_per_second"],
        "dataplane": {"running": served["running"]},
        "booted_at": flows.get("booted_at", 0),
        "generation": config.get("generation", 0),
        "schemas": list(SCHEMAS),
    }


def boot():
    """At start-up a unit takes no traffic until the control plane confirms its state."""
    activate_pending_slot()
    standalone = membership().get("mode") == "standalone"
    write_json("traffic.json", {"accepting": standalone, "active_connections": 0, "booted_at": time.time()})
    append_log("info", f"Unit started (version {running_version()})")
    with state_lock():
        start_dataplane(membership().get("mode", "standalone"))
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


def set_membership(mode, shared_address):
    if mode not in ("admin", "member"):
        raise AgentError("mode must be 'admin' or 'member'")
    with state_lock():
        write_json("membership.json", {"mode": mode, "shared_address": shared_address})
        # The admin also spreads the Virtual Services' traffic over the nodes; a member does not.
        start_dataplane(mode)
        return status()


def start_dataplane(mode):
    try:
        dataplane.refresh(applied_document(), mode)
    except AgentError as exc:
        # The unit still comes up and keeps its membership: the control plane reaches it and pushes
        # a configuration HAProxy takes; until then the reason is in the node's log.
        append_log("error", f"Data plane not (re)started: {exc}")


def applied_document():
    return read_json("config.json", {}).get("config") or {}


def rotation(text):
    """Which nodes the admin's spreader sends new connections to: {"<node id>": "ready"|"drain"|"maint"|"closed"}."""
    with state_lock():
        return dataplane.set_rotation(text, applied_document(), membership().get("mode", "standalone"))


def log(message):
    """Record an operator's message in the node's own log (used by tests of quoting)."""
    if not isinstance(message, str) or not message or len(message) > MAX_MESSAGE:
        raise AgentError(f"message must be 1-{MAX_MESSAGE} characters")
    append_log("info", message)
    return {"logged": message}

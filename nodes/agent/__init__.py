"""Flotilla node agent: the only program the control plane runs on a node.

Run over SSH as ``flotilla-agent VERB [ARGS]`` (one file: ``build.build_zipapp``).
Every verb prints exactly one JSON document on stdout; a failure prints
``{"error": ...}`` and exits non-zero. ``serve`` keeps one process per SSH
session and answers JSON lines (``{"verb": ..., "args": [...]}``) so that a
busy control plane does not pay interpreter start-up per command.

Standard library only, and no Django: start-up time bounds every push. The
node-local WUI imports this package as a library to read and write the same
state, so everything here is also a plain function. Modules, by capability:

- ``formats``: what node and control plane agree on (version, schemas, ranges,
  canonical JSON, fingerprints, the tar-member rule, the atomic write);
- ``state``: NODE_HOME, JSON state files, the state lock, the node's log;
- ``machine``: facts (hardware, interfaces, host key);
- ``configuration``: applying the configuration document;
- ``dataplane``: HAProxy: rendering, checking, reloading, rotation through its runtime API;
- ``firmware``: slots: stage, install, discard, activate at boot;
- ``join``: the offer, the code, accept and abort, authorized keys, leaving;
- ``unit``: status, traffic, boot, reboot, membership, rotation;
- ``serve``: the verbs, the JSON-lines loop, main;
- ``build``: the one-file agent (a zipapp) installed on a node.

The names below are the library the node-local WUI and the control plane use.
"""

from nodes.agent.configuration import apply_config
from nodes.agent.firmware import firmware_discard, firmware_install, firmware_stage
from nodes.agent.formats import HARDWARE_KEYS, SCHEMAS, VERSION, canonical, fingerprint
from nodes.agent.join import (
    JOIN_ATTEMPTS,
    JOIN_WINDOW,
    abort_join,
    accept_join,
    authorize_key,
    cancel_join,
    check_join_code,
    join_code,
    join_offer,
    leave_cluster,
    membership,
    offer_join,
    unauthorize_key,
)
from nodes.agent.machine import facts, host_key, interface_facts
from nodes.agent.serve import VERBS, call
from nodes.agent.state import (
    AgentError,
    Malformed,
    NotWaiting,
    append_log,
    node_home,
    read_json,
    read_log,
    running_version,
    state_lock,
    write_json,
)
from nodes.agent.unit import boot, log, reboot, rotation, set_accepting, set_membership, status, traffic

__all__ = [
    "HARDWARE_KEYS",
    "JOIN_ATTEMPTS",
    "JOIN_WINDOW",
    "SCHEMAS",
    "VERBS",
    "VERSION",
    "AgentError",
    "Malformed",
    "NotWaiting",
    "abort_join",
    "accept_join",
    "append_log",
    "apply_config",
    "authorize_key",
    "boot",
    "call",
    "canonical",
    "cancel_join",
    "check_join_code",
    "facts",
    "fingerprint",
    "firmware_discard",
    "firmware_install",
    "firmware_stage",
    "host_key",
    "interface_facts",
    "join_code",
    "join_offer",
    "leave_cluster",
    "log",
    "membership",
    "node_home",
    "offer_join",
    "read_json",
    "read_log",
    "reboot",
    "rotation",
    "running_version",
    "set_accepting",
    "set_membership",
    "state_lock",
    "status",
    "traffic",
    "unauthorize_key",
    "write_json",
]

"""The agent as a program: verbs, one JSON document per run, or JSON lines over one session (serve)."""

import json
import sys

from nodes.agent.configuration import apply_config
from nodes.agent.firmware import firmware_discard, firmware_install, firmware_stage
from nodes.agent.join import leave_cluster, offer_join
from nodes.agent.machine import facts
from nodes.agent.state import AgentError
from nodes.agent.unit import boot, log, reboot, rotation, set_accepting, set_membership, status

VERBS = {
    "facts": (facts, 0),
    "status": (status, 0),
    "log": (log, 1),
    "boot": (boot, 0),
    "accepting": (set_accepting, 1),
    "reboot": (reboot, 0),
    "membership": (set_membership, 2),
    "rotation": (rotation, 1),
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
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

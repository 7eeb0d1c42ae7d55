"""Applying the cluster's configuration document: checked against the schemas and ranges, atomically."""

import hashlib
import json
import os

from nodes.agent import dataplane
from nodes.agent.formats import DRAIN_TIME, MTU, SCHEMAS, VIRTUAL_ID, canonical
from nodes.agent.state import AgentError, append_log, path, read_json, running_version, state_lock, write_json


def new_configuration_source():
    """Joining or leaving a cluster changes who numbers the generations: the unit's own WUI or the
    cluster. The applied document is kept aside as the previous one, so the new source's first
    generation applies whatever its number."""
    if os.path.exists(path("config.json")):
        os.replace(path("config.json"), path("config.prev.json"))


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
    check_fields(body)
    if hashlib.sha256(canonical(body)).hexdigest() != digest:
        raise AgentError("checksum mismatch: the document was damaged in transit")
    # One apply at a time: HAProxy is reloaded in the order the files are written.
    with state_lock():
        current = read_json("config.json", {})
        if current and hashlib.sha256(canonical(current.get("config"))).hexdigest() != current.get("sha256"):
            current = {}  # a damaged local copy is replaced, whatever its generation
        if generation < current.get("generation", 0):
            raise AgentError(f"generation {generation} is older than the applied {current['generation']}")
        if generation == current.get("generation") and digest == current.get("sha256"):
            return {"generation": generation, "changed": False}
        # HAProxy first: a configuration it refuses is not applied at all, and the running one keeps serving.
        dataplane.refresh(body, read_json("membership.json", {}).get("mode", "standalone"))
        if current:
            write_json("config.prev.json", current)
        write_json("config.json", envelope)
        append_log("info", f"Applied configuration generation {generation}")
    return {"generation": generation, "changed": True}


def check_fields(body):
    """Refuse a document whose fields are not what this version can apply."""
    cluster = body.get("cluster")
    if not isinstance(cluster, dict):
        raise AgentError("configuration field 'cluster' is missing")
    for key, valid in (("virtual_id", VIRTUAL_ID), ("drain_time", DRAIN_TIME)):
        if cluster.get(key) not in valid:
            raise AgentError(f"configuration field 'cluster.{key}' must be {valid.text}")
    for key in ("nodes", "virtual_services"):
        if not isinstance(body.get(key), list):
            raise AgentError(f"configuration field {key!r} must be a list")
    network = body.get("network")
    interfaces = network.get("interfaces") if isinstance(network, dict) else None
    for n, interface in enumerate(interfaces if isinstance(interfaces, list) else []):
        if isinstance(interface, dict) and "mtu" in interface and interface["mtu"] not in MTU:
            raise AgentError(f"configuration field 'network.interfaces[{n}].mtu' must be {MTU.text}")

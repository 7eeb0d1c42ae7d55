"""Joining a cluster, the unit's side: the offer and its one-time code, the accept, the abort, and the
cluster's SSH key in authorized_keys. Every step holds the state lock."""

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import time

from nodes.agent.configuration import new_configuration_source
from nodes.agent.formats import fingerprint
from nodes.agent.machine import facts, host_key
from nodes.agent.state import (
    AgentError,
    Malformed,
    NotWaiting,
    append_log,
    path,
    read_json,
    state_lock,
    write_file,
    write_json,
)

JOIN_WINDOW = 600  # seconds a unit waits to join after "Add to Cluster"
JOIN_ATTEMPTS = 5  # wrong codes before the offer is withdrawn

CODE_FORM = re.compile(r"([A-Z2-7]{4})-?([A-Z2-7]{4})")  # base32 of 5 random bytes, as offer_join makes it


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
            accepted_at = os.stat(path("membership.json")).st_mtime
        except FileNotFoundError:
            return False
    # A clock set back must not stretch the window either.
    return abs(now - accepted_at) > JOIN_WINDOW


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
        if os.path.exists(path("join.json")):
            os.unlink(path("join.json"))
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
            new_configuration_source()
            append_log("info", f"Join code accepted: joining the cluster at {shared}")
        authorize_key(cluster_key)
        if os.path.exists(path("join.json")):
            os.unlink(path("join.json"))
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
    if os.path.exists(path("join.json")):
        os.unlink(path("join.json"))  # the used code must not be usable again
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
    return path(".ssh", "authorized_keys")


def _authorized_lines():
    try:
        with open(_authorized_keys_path(), encoding="ascii") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def authorize_key(key_line):
    keys = _authorized_keys_path()
    os.makedirs(os.path.dirname(keys), mode=0o700, exist_ok=True)
    key = " ".join(key_line.split()[:2])
    with state_lock():
        lines = _authorized_lines()
        if key not in (" ".join(line.split()[:2]) for line in lines):
            lines.append(key_line.strip())
            _write_private(keys, "".join(line + "\n" for line in lines))


def unauthorize_key(key):
    """Remove exactly this key's lines; every other key stays as it was."""
    with state_lock():
        lines = _authorized_lines()
        kept = [line for line in lines if " ".join(line.split()[:2]) != key]
        if kept != lines:
            _write_private(_authorized_keys_path(), "".join(line + "\n" for line in kept))


def _write_private(target, text):
    write_file(target, text.encode(), 0o600)


def leave_cluster():
    """Delete: the unit becomes standalone again and forgets the cluster's key."""
    with state_lock():
        keys = _authorized_keys_path()
        write_json("membership.json", {"mode": "standalone"})
        new_configuration_source()
        append_log("warning", "Removed from the cluster: now a standalone unit")
        if os.path.exists(keys):
            _write_private(keys, "")
    return {"mode": "standalone"}

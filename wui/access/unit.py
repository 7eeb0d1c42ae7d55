"""A unit's own commands on its own address: create a cluster, wait to join one, its status, reboot."""

from nodes import agent, membership
from wui.access.answers import Failure


def status(call):
    state = agent.membership()
    offer = agent.join_offer()
    data = {
        "Unit": {
            "Mode": state.get("mode", "standalone"),
            "SharedAddress": state.get("shared_address") or "",
            "Version": agent.running_version(),
        }
    }
    if offer:
        data["Join"] = _offer(offer)
    return data


def _offer(offer):
    return {"Code": offer["code"], "ExpiresAt": int(offer["expires_at"]), "Fingerprint": offer["fingerprint"]}


def create(call):
    """Create New Cluster: the unit becomes the admin node and reboots; the shared address answers once it is back."""
    try:
        shared = membership.create_cluster(call.require("SharedAddress"), call.actor)
    except membership.Refused as exc:
        raise Failure(str(exc)) from exc
    return {
        "Message": f"Cluster created: this unit is rebooting; reconnect to {shared} (its /access/cluster/status)",
        "SharedAddress": shared,
    }


def joincluster(call):
    """Add to Cluster: the unit waits to join; the code it answers goes with addnode on the shared address."""
    try:
        offer = membership.offer_join(call.actor)
    except membership.Refused as exc:
        raise Failure(str(exc)) from exc
    return {"Message": f"Waiting to join a cluster for {agent.JOIN_WINDOW // 60} minutes", "Join": _offer(offer)}


def reboot(call):
    agent.reboot()
    return {"Message": "This unit is rebooting"}

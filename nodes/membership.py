"""A unit's own side of clustering, for its WUI and its /access API: Create New Cluster, Add to Cluster."""

from cluster import events, ssh
from cluster.membership import rules as membership
from cluster.models import Cluster
from nodes import agent
from nodes.local import own_address, unit_mode

Refused = membership.Refused


def create_cluster(shared_address, actor):
    """Make this standalone unit the admin node (node 1) of a cluster on ``shared_address`` and reboot it
    into that role; returns the shared address as checked. Refused says why nothing changed."""
    if unit_mode() != "standalone":
        raise Refused("This unit is already in a cluster")
    facts = agent.facts()
    shared = membership.check_shared_address(shared_address, _addresses(facts))
    agent.authorize_key(ssh.cluster_public_key())
    membership.create_cluster(shared, facts, own_address(facts), actor)
    agent.set_membership("admin", shared)
    agent.reboot()
    return shared


def offer_join(actor):
    """Add to Cluster: wait to be claimed with a one-time code; returns the offer (code, expiry, fingerprint)."""
    if Cluster.get().mode == Cluster.Mode.HA:
        raise Refused("HA mode is configured on this unit: clustering is unavailable")
    try:
        offer = agent.offer_join()
    except agent.AgentError as exc:
        raise Refused(str(exc)) from exc
    events.operator_action(actor, "Add to Cluster: waiting to join")
    return offer


def _addresses(facts):
    return {a.split("/")[0] for i in facts["interfaces"] for a in i["addresses"]}

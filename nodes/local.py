"""The node-local WUI's view of its own unit, through the agent's library code."""

from django.conf import settings

from nodes import agent


def unit_mode():
    """standalone, joining, admin or member: what this unit currently is."""
    try:
        return agent.membership().get("mode", "standalone")
    except agent.AgentError:
        return "standalone"


def own_address(facts):
    """The unit's primary address: the first address of its first interface."""
    for interface in facts["interfaces"]:
        for address in interface["addresses"]:
            return address.split("/")[0]
    raise agent.AgentError("this unit has no interface address")


def wui_url(address, page=""):
    """A unit's WUI (every unit serves it on the same port), at ``page`` ("network-setup/")."""
    return f"https://{address}:{settings.NODE_WUI_PORT}/{page}"


def shared_url(page=""):
    """The cluster's shared WUI at ``page``, or None while this unit belongs to no cluster."""
    shared = agent.membership().get("shared_address")
    return wui_url(shared, page) if shared else None

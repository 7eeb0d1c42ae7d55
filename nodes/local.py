"""The node-local WUI's view of its own unit, through the agent's library code."""

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

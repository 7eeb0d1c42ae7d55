"""The node-local WUI's view of its own unit, through the agent's library code."""

from nodes import agent


def unit_mode():
    """standalone, admin or member: what this unit currently is."""
    try:
        return agent.read_json("membership.json", {}).get("mode", "standalone")
    except agent.AgentError:
        return "standalone"

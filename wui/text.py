"""How an operator's bad value is quoted back: never whole, never more than a line."""

from nodes.agent.formats import short  # noqa: F401  (one quoting rule for the agent and the WUI)


def clip(message, limit=2000):
    """A stored or shown message never carries a value whole: log lines stay lines."""
    message = str(message)
    return message if len(message) <= limit else message[: limit - 1] + "…"


def human_size(n):
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def plural(count, noun):
    """'1 open connection', '3 open connections': counts in messages read as sentences."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""How an operator's bad value is quoted back: never whole, never more than a line."""

SHORT = 40


def short(value, limit=SHORT):
    """A short, printable prefix of a refused value, quoted, for a refusal message."""
    text = str(value)
    clipped = text[:limit]
    printable = "".join(c if c.isprintable() else "?" for c in clipped)
    more = f"... ({len(text)} characters)" if len(text) > limit else ""
    return repr(printable) + more


def clip(message, limit=2000):
    """A stored or shown message never carries a value whole: log lines stay lines."""
    message = str(message)
    return message if len(message) <= limit else message[: limit - 1] + "…"


def human_size(n):
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"

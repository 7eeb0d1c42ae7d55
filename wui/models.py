"""wui's own rows: the API keys (their rules live in wui.api.keys)."""

from wui.api.keys import ApiKey

__all__ = ["ApiKey"]

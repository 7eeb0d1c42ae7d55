"""The wui app's models in the auditors' Django admin (read-only)."""

from wui.api import admin  # noqa: F401  (registers ApiKey)

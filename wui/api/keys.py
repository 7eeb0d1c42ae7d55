"""API keys: made per user in the WUI, shown once, kept only as a hash, read-only or full.

A key is ``flt_<prefix>_<secret>``: the prefix (stored in clear) finds the row and names the key in
the WUI and the logs; the secret is 32 random bytes, so a plain SHA-256 of the whole key is enough
to store (a slow hash guards guessable passwords, not random ones) and checking one costs nothing.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX_LENGTH = 8
# The last use is recorded at most this often per key: a script polling every second writes once a minute.
LAST_USED_EVERY = timedelta(minutes=1)


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=64, help_text="What the key is for, as its owner named it.")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    sha256 = models.CharField(max_length=64)
    read_only = models.BooleanField(default=True, help_text="A read-only key may only read, never change.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "wui"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}, {'read-only' if self.read_only else 'full'})"

    @property
    def access(self):
        return "read-only" if self.read_only else "full"


def _digest(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def create(user, name, read_only=True):
    """A new key for ``user``: (the row, the key itself). The key is never stored: show it once."""
    while True:
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        if not ApiKey.objects.filter(prefix=prefix).exists():
            break
    raw = f"flt_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(user=user, name=name, prefix=prefix, sha256=_digest(raw), read_only=read_only)
    return key, raw


def revoke(key):
    """Refused from the next request on: the check reads the row every time."""
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def authenticate(raw, address=None, now=None):
    """The live key ``raw`` is, or None (unknown, malformed, revoked, or its user is inactive)."""
    parts = (raw or "").split("_")
    if len(parts) < 3 or parts[0] != "flt" or len(parts[1]) != PREFIX_LENGTH:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if key is None or not key.user.is_active or not hmac.compare_digest(key.sha256, _digest(raw)):
        return None
    now = now or timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY or key.last_used_from != address:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_from=address)
        key.last_used_at, key.last_used_from = now, address
    return key

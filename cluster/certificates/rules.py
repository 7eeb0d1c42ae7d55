"""Certificates & Security > WUI Certificate: the certificate this unit's WUIs serve, and its replacement.

The pair lives in the unit's state directory (wui/tls.py); on the admin unit the shared WUI serves
the same one, so the page on the shared address replaces the certificate of the admin unit (its
own address and the shared one).
"""

from django.conf import settings

from cluster import events
from wui import tls

Refused = tls.Refused


def certificate_directory():
    return tls.directory({"NODE_HOME": settings.NODE_HOME, "FLOTILLA_VAR_DIR": str(settings.VAR_DIR)})


def current():
    return tls.describe(certificate_directory())


def replace(certificate_pem, key_pem, actor, now=None):
    """Check the operator's pair and serve it from the next connection on; a refusal changes nothing."""
    try:
        described = tls.replace(certificate_directory(), certificate_pem, key_pem, now=now)
    except Refused as exc:
        events.operator_action(actor, f"WUI certificate not replaced ({exc})")
        raise
    events.operator_action(actor, f"WUI certificate replaced (SHA-256 {described['fingerprint']})")
    return described

"""Who calls the /access API: HTTP Basic (or apiuser/apipass in /accessv2), or an API key (apikey=).

Never the browser's session: a script proves who it is on every request, and a page open in a
browser must not lend its login to a request another site makes it send.
"""

import base64
import binascii
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate

from wui.access.answers import Failure
from wui.api import keys

NO_CREDENTIALS = "Authorization required"
BAD_CREDENTIALS = "Incorrect username or password"
BAD_KEY = "Invalid API key: unknown, revoked or malformed"


@dataclass(frozen=True)
class Caller:
    user: object
    key: keys.ApiKey | None = None

    @property
    def read_only(self):
        return self.key is not None and self.key.read_only


def caller(request, params):
    """The authenticated caller, or Failure 401 (403 once django-axes has locked the user out)."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            username, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Failure(BAD_CREDENTIALS, 401) from None
        if not sep:
            raise Failure(BAD_CREDENTIALS, 401)
        return _password(request, username, password)
    if "apiuser" in params or "apipass" in params:
        return _password(request, str(params.get("apiuser", "")), str(params.get("apipass", "")))
    if "apikey" in params:
        key = keys.authenticate(str(params["apikey"]), request.META.get("REMOTE_ADDR"))
        if key is None:
            raise Failure(BAD_KEY, 401)
        return Caller(key.user, key)
    raise Failure(NO_CREDENTIALS, 401)


def _password(request, username, password):
    # Through Django's authenticate(), so that django-axes counts wrong passwords and locks out.
    user = authenticate(request, username=username, password=password)
    if getattr(request, "axes_locked_out", False):
        # The script gets this API's answer, not the login page's lock-out template.
        request.axes_locked_out = False
        hours = settings.AXES_COOLOFF_TIME
        raise Failure(f"Too many failed logins: {username} is locked out for {round(hours * 60)} minutes", 403)
    if user is None:
        raise Failure(BAD_CREDENTIALS, 401)
    return Caller(user)

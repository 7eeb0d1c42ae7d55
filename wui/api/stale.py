"""The stale-write check: a write sent with the generation its client read is refused if that is not the newest.

As the HAProxy Data Plane API does with its version: ``If-Match: "<generation>"`` or ``"generation": N``
in the body. The check takes the cluster row's lock (the lock every ``config.change()`` takes) and the
write runs inside the same transaction, so no other change can slip in between the check and the
write; should the write fail, nothing of it stays.
"""

import functools
import re

from django.db import transaction

from cluster.configuration import rules as config
from cluster.models import Cluster
from wui.api.errors import BadInput, Stale

_ETAG = re.compile(r'\s*(?:W/)?"?(\d{1,9})"?\s*')


def sent_generation(request):
    """The generation the client says it read, or None (no check)."""
    header = request.META.get("HTTP_IF_MATCH")
    if header is not None and header.strip() != "*":
        match = _ETAG.fullmatch(header)
        if not match:
            raise BadInput('If-Match: send the generation you read, such as "12".', {"If-Match": ["not a generation"]})
        return int(match.group(1))
    data = getattr(request, "data", None)
    value = data.get("generation") if hasattr(data, "get") else None
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not str(value).isdigit() or len(str(value)) > 9:
        raise BadInput(
            "generation: send the configuration generation you read, a whole number.",
            {"generation": ["not a whole number"]},
        )
    return int(value)


def checked(handler):
    """A view method that refuses a stale write with 409 and the current generation, and changes nothing."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        sent = sent_generation(request)
        if sent is None:
            return handler(view, request, *args, **kwargs)
        with transaction.atomic():
            Cluster.objects.select_for_update().get_or_create(pk=1)
            current = config.latest_number()
            if sent != current:
                raise Stale(sent, current)
            return handler(view, request, *args, **kwargs)

    return wrapper

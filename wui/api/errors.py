"""How the REST API refuses: ``{"detail": reason}`` (and ``errors`` per field for bad input), one status per cause.

The rules raise their own Refused exceptions with the reason the WUI shows; here they become the same
reason with the status a script can act on: 400 bad input, 404 no such thing, 409 refused because of
the cluster's state (or a stale generation), 413 too large.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

from cluster.membership.rules import Refused as RuleRefused


class Refused(exceptions.APIException):
    """The cluster's state does not allow it now; the reason is the rule's own words."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Refused."


class BadInput(exceptions.APIException):
    """Bad input: the reason, and each field's messages as the WUI form shows them."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad input."

    def __init__(self, detail, errors=None):
        super().__init__(detail)
        self.errors = errors or {}


class Stale(exceptions.APIException):
    """The client wrote on top of a configuration it has not read: nothing was changed."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, sent, current):
        super().__init__(
            f"The configuration changed since generation {sent}: it is now at generation {current}; read it again."
        )
        self.generation = current


def form_errors(form):
    """A bound, invalid Django form as BadInput: its messages joined, and per field."""
    errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
    return BadInput(" ".join(e for errs in errors.values() for e in errs), errors)


def handle(exc, context):
    """DRF's handler, with the contract's shape: always ``detail`` as one string."""
    if isinstance(exc, (Http404, PermissionDenied)):
        return exception_handler(exc, context)
    if isinstance(exc, RuleRefused):
        # A membership or rolling-reboot rule refused because of the cluster's state: its own words, 409.
        exc = Refused(str(exc))
    if isinstance(exc, exceptions.ValidationError) and not isinstance(exc, BadInput):
        errors = _flatten(exc.detail)
        exc = BadInput(" ".join(f"{f}: {' '.join(m)}" for f, m in errors.items()) or "Bad input.", errors)
    response = exception_handler(exc, context)
    if response is None:
        return None
    body = {"detail": str(response.data.get("detail", "")) if isinstance(response.data, dict) else str(exc)}
    if isinstance(exc, BadInput):
        body["errors"] = exc.errors
    if isinstance(exc, Stale):
        body["generation"] = exc.generation
        response["ETag"] = f'"{exc.generation}"'
    response.data = body
    return response


def _flatten(detail):
    if isinstance(detail, dict):
        return {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()}
    return {"non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}

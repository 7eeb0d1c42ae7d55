"""Lines of the System Message File and the Warning Message File."""

from cluster.models import Event
from wui.text import clip


def record(message, level=Event.Level.INFO, node=None, request=None):
    user = getattr(request, "user", None) if request else None
    return Event.objects.create(
        message=clip(message),
        level=level,
        node=node,
        node_number=node.number if node else None,
        user=user if user and user.is_authenticated else None,
        source_address=request.META.get("REMOTE_ADDR") if request else None,
    )


def operator_action(request, message, node=None):
    """One line per operator action: who did what, from where."""
    who = request.user.get_username()
    return record(f"{message} by {who} from {request.META.get('REMOTE_ADDR', '?')}", node=node, request=request)


def warning(message, node=None):
    return record(message, level=Event.Level.WARNING, node=node)

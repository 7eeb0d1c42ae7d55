"""Lines of the System Message File and the Warning Message File, and who caused them."""

from dataclasses import dataclass

from cluster.models import Event
from wui.text import clip


@dataclass(frozen=True)
class Actor:
    """Who asked for a change and from where: all a rule needs of a request (views make one with ``of``)."""

    user: object = None
    address: str | None = None

    @classmethod
    def of(cls, request):
        user = getattr(request, "user", None)
        return cls(user if user is not None and user.is_authenticated else None, request.META.get("REMOTE_ADDR"))

    @property
    def name(self):
        return self.user.get_username() if self.user else "an unknown user"


def record(message, level=Event.Level.INFO, node=None, actor=None):
    return Event.objects.create(
        message=clip(message),
        level=level,
        node=node,
        node_number=node.number if node else None,
        user=actor.user if actor else None,
        source_address=actor.address if actor else None,
    )


def operator_action(actor, message, node=None):
    """One line per operator action: who did what, from where."""
    return record(f"{message} by {actor.name} from {actor.address or '?'}", node=node, actor=actor)


def warning(message, node=None):
    return record(message, level=Event.Level.WARNING, node=node)

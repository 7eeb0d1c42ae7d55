"""The running version: what the units actually run, as their health checks report it.

The control plane's own code (``nodes.agent.VERSION``) is not updated by a software
update: the nodes are. So the version a patch must be newer than, the one the Update
Software page shows and the one a backup is stamped with come from the nodes' reports.
"""

import re

from django.conf import settings

from nodes import agent
from wui import bounded

VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){2}")


class BadVersion(ValueError):
    pass


def parse_version(text):
    """A version as three numbers to compare; what a patch, a backup and a node report must look like."""
    if not isinstance(text, str) or not VERSION_RE.fullmatch(text):
        raise BadVersion(f"invalid version string {bounded.said(text)}: a version is three numbers, like 1.2.0")
    return tuple(int(part) for part in text.split("."))


def _key(version):
    try:
        return parse_version(version)
    except BadVersion:
        return None


def own_version():
    """This unit's running version: its installed slot, or the code it runs when it has none."""
    try:
        return agent.running_version()
    except (agent.AgentError, OSError, ValueError):
        return agent.VERSION


def versions_by_node():
    """``{version: [node numbers]}`` of the cluster's members, lowest version first.

    A member that has never reported a version (not yet checked) is left out: it says
    nothing about what runs.
    """
    from cluster.models import Node

    found = {}
    for number, version in Node.objects.filter(removing=False).values_list("number", "version"):
        if _key(version) is not None:
            found.setdefault(version, []).append(number)
    return {v: sorted(found[v]) for v in sorted(found, key=_key)}


def cluster_version():
    """The running version: the lowest any member runs (a cluster is only as new as its oldest node).

    On a unit's own WUI it is that unit's; with no member reporting one yet, this unit's own.
    """
    if settings.FLOTILLA_ROLE == "node":
        return own_version()
    found = versions_by_node()
    return next(iter(found)) if found else own_version()


def describe(found=None):
    """What the nodes run, for the page: "1.1.0", or "1.0.0 on nodes 1, 3; 1.1.0 on nodes 2, 4" while mixed."""
    if settings.FLOTILLA_ROLE == "node":
        return own_version()
    found = versions_by_node() if found is None else found
    if len(found) <= 1:
        return next(iter(found), None) or own_version()
    parts = []
    for version, numbers in found.items():
        word = "node" if len(numbers) == 1 else "nodes"
        parts.append(f"{version} on {word} {', '.join(str(n) for n in numbers)}")
    return "; ".join(parts)

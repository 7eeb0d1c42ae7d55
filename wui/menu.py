"""The main menu, as the LoadMaster WUI lays it out, for each kind of WUI.

The shared address (and a standalone unit) get the full menu; a unit that is
a cluster member or admin shows only its own maintenance options on its local
address.
"""

from django.conf import settings
from django.urls import NoReverseMatch, reverse

FULL_MENU = [
    ("Home", "home", []),
    ("Virtual Services", None, [("View/Modify Services", "virtual_services")]),
    (
        "System Configuration",
        None,
        [
            ("Network Setup", "network_setup"),
            ("HA and Clustering", "ha_clustering"),
            ("Cluster Control", "cluster_control"),
            ("System Administration", None),
            ("Backup/Restore", "backup_restore"),
            ("Update Software", "update_software"),
            ("API Keys", "api_keys"),
            ("Logging Options", None),
            ("System Log Files", "system_logs"),
        ],
    ),
    ("Certificates & Security", None, [("WUI Certificate", "wui_certificate")]),
]

NODE_MENU = [
    ("Home", "home", []),
    (
        "System Configuration",
        None,
        [
            ("Cluster Control", "cluster_control"),
            ("Network Setup", "network_setup"),
            ("Logging Options", None),
            ("System Log Files", "system_logs"),
            ("System Administration", None),
            ("Reboot", "reboot"),
        ],
    ),
    ("Certificates & Security", None, [("WUI Certificate", "wui_certificate")]),
]


def _resolve(items):
    out = []
    for label, name in items:
        try:
            out.append({"label": label, "url": reverse(name) if name else None})
        except NoReverseMatch:
            continue
    return out


def menu_for(request):
    menu = node_menu() if settings.FLOTILLA_ROLE == "node" else FULL_MENU
    return [
        {"label": label, "url": reverse(name) if name else None, "items": _resolve(items)}
        for label, name, items in menu
    ]


def node_menu():
    from nodes.local import unit_mode

    return FULL_MENU if unit_mode() == "standalone" else NODE_MENU


def context(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"menu": menu_for(request), "flotilla_role": settings.FLOTILLA_ROLE}

"""The cluster's commands on the shared address: status, nodes, parameters, interfaces, statistics.

Each handler calls the rule the WUI's view calls, so a refusal gives the WUI's reason.
"""

from django.db.models import Q
from django.utils import timezone

from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.membership.forms import DrainTimeForm, VirtualIdForm
from cluster.membership.views import ACTIONS, DONE, RECENT_JOINS
from cluster.models import Cluster, Interface, JoinRequest, Node, Rollout
from cluster.network import rules as network
from cluster.network.document import Refused as NetworkRefused
from cluster.network.document import ensure_interfaces, link_status
from wui.access.answers import Failure
from wui.access.call import yn

# --- cluster/status and the nodes ------------------------------------------------------------


def status(call):
    cluster, rows, _ = membership.node_rows()
    since = timezone.now() - RECENT_JOINS
    joins = JoinRequest.objects.select_related("node").filter(
        Q(state=JoinRequest.State.PENDING) | Q(created_at__gte=since)
    )
    data = {
        "Cluster": {
            "Mode": cluster.mode,
            "SharedAddress": cluster.shared_address or "",
            "ClusterVirtualId": cluster.virtual_id,
            "NodeDrainTime": cluster.drain_time,
            "Generation": config.latest_number(),
        },
        "Node": [_node(row) for row in rows],
        "Join": [_join(join) for join in joins],
    }
    if (rollout := Rollout.objects.first()) is not None:
        data["Update"] = {"Title": rollout.title, "State": rollout.get_state_display(), "Message": rollout.message}
    return data


def _node(row):
    node = row["node"]
    return {
        "NodeId": node.number,
        "Address": node.address,
        "Status": row["status"].label,
        "Enabled": yn(node.enabled),
        "Admin": yn(node.is_admin),
        "Deleting": yn(row["deleting"]),
        "Version": node.version,
        "AppliedGeneration": node.applied_generation,
        "ActiveConns": node.active_connections,
        "RequestsPerSec": node.requests_per_second,
        "Error": node.config_error or node.down_reason or node.last_error,
    }


def _join(join):
    return {
        "Address": join.address,
        "State": join.get_state_display(),
        "Message": join.message,
        "NodeId": join.node.number if join.node else "",
    }


def addnode(call):
    """Add New Node with the code the unit showed after Add to Cluster (joincluster): answers once accepted."""
    address = call.require("Address")
    join = _refusing(membership.request_join, address, call.require("Code"), call.get("Fingerprint", ""), call.actor)
    return {
        "Message": f"Adding {join.address}: accepted; cluster/status lists it under Join until it is Added or Refused",
        "Address": join.address,
    }


def _node_pk(call):
    number = call.integer("NodeId", low=1)
    node = Node.objects.filter(number=number).first()
    if node is None:
        raise Failure(f"Unknown node: there is no node {number} in the cluster")
    return node.pk


# Delete answers once accepted: the node is listed (Deleting Y) until the worker has removed it.
AFTER = {"delete": " cluster/status lists it (Deleting: Y) until it has left the cluster."}


def _node_action(action):
    def handler(call):
        node = _refusing(ACTIONS[action], _node_pk(call), call.actor)
        return {"Message": f"Node {node.number} {DONE[action]}.{AFTER.get(action, '')}"}

    return handler


def _refusing(rule, *args):
    try:
        return rule(*args)
    except membership.Refused as exc:
        raise Failure(str(exc)) from exc


enablenode = _node_action("enable")
disablenode = _node_action("disable")
deletenode = _node_action("delete")


# --- get and set: the cluster parameters and the interface options ---------------------------

CLUSTER_PARAMETERS = {"clustervirtualid": ("virtual_id", VirtualIdForm), "nodedraintime": ("drain_time", DrainTimeForm)}
INTERFACE_OPTIONS = {
    "clusterchecks": "use_for_cluster_checks",
    "clusterupdates": "use_for_cluster_updates",
    "geotrafficenable": "use_for_geo",
}
INTERFACE_VALUES = {"mtu": "mtu", "linkstatus": "link_mode"}
NAMES = {
    "clustervirtualid": "ClusterVirtualId",
    "nodedraintime": "NodeDrainTime",
    "clusterchecks": "ClusterChecks",
    "clusterupdates": "ClusterUpdates",
    "geotrafficenable": "GeoTrafficEnable",
    "mtu": "Mtu",
    "linkstatus": "LinkStatus",
}


def _param(call):
    param = call.require("param")
    if param.lower() not in NAMES:
        raise Failure(f"Unknown parameter: {param[:40]} (this cluster has {', '.join(NAMES.values())})")
    return param.lower()


def get(call):
    param = _param(call)
    if param in CLUSTER_PARAMETERS:
        return {NAMES[param]: getattr(Cluster.get(), CLUSTER_PARAMETERS[param][0])}
    interface = _interface(call)
    if param in INTERFACE_OPTIONS:
        return {NAMES[param]: yn(getattr(interface, INTERFACE_OPTIONS[param]))}
    return {NAMES[param]: getattr(interface, INTERFACE_VALUES[param])}


def set_(call):
    param, value = _param(call), call.get("value")
    if value is None:
        raise Failure("Missing parameter: value")
    if param in CLUSTER_PARAMETERS:
        field, form_class = CLUSTER_PARAMETERS[param]
        form = form_class({field: value})
        if not form.is_valid():
            raise Failure(form.errors[field][0])
        membership.set_parameter(field, form.cleaned_data[field], call.actor)
        return {NAMES[param]: form.cleaned_data[field]}
    interface = _interface(call)
    if param in INTERFACE_OPTIONS:
        data = {name: getattr(interface, name) for name in INTERFACE_OPTIONS.values()}
        data[INTERFACE_OPTIONS[param]] = call.flag("value")
        action = "options"
    else:
        data, action = {INTERFACE_VALUES[param]: value}, "mtu" if param == "mtu" else "link"
    try:
        network.apply_change(action, interface, data, call.actor)
    except NetworkRefused as exc:
        raise Failure(str(exc)) from exc
    return get(call)


def _interface(call):
    ensure_interfaces()
    index = call.integer("interface", default=0)
    interface = Interface.objects.filter(index=index).first()
    if interface is None:
        raise Failure(f"Unknown interface: {index}")
    return interface


def showiface(call):
    interface = _interface(call)
    sides = interface.node_interfaces.select_related("node").order_by("node__number")
    admin = next((s.address for s in sides if s.node.is_admin), "")
    return {
        "Interface": {
            "Id": interface.index,
            "Name": interface.name,
            "IPAddress": admin,
            "SharedIPAddress": interface.cluster_shared_address or "",
            "Mtu": interface.mtu,
            "ClusterChecks": yn(interface.use_for_cluster_checks),
            "ClusterUpdates": yn(interface.use_for_cluster_updates),
            "GeoTrafficEnable": yn(interface.use_for_geo),
            "LinkStatus": interface.link_mode,
            "Link": link_status(interface),
            "AdditionalAddress": list(interface.additional_addresses),
            "NodeAddress": [{"NodeId": s.node.number, "Address": s.address} for s in sides],
        }
    }


def stats(call):
    _, rows, _ = membership.node_rows()
    total = membership.traffic(rows)
    return {
        "VStotals": {"ActiveConns": total["connections"], "RequestsPerSec": total["requests_per_second"]},
        "Node": [
            {
                "NodeId": r["node"].number,
                "ActiveConns": r["node"].active_connections,
                "RequestsPerSec": r["node"].requests_per_second,
            }
            for r in rows
            if r["status"] != "down"
        ],
    }

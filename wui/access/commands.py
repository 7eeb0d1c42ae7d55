"""Every /access command: LoadMaster's name -> its handler, whether it changes anything, where it runs.

"shared" is the cluster's shared address (the cluster WUI), "node" a unit's own address (its own WUI).
"""

from dataclasses import dataclass

from wui.access import cluster, services, system, unit


@dataclass(frozen=True)
class Command:
    handler: object
    changes: bool = False  # a read-only API key may run only the commands that change nothing
    body: bool = False  # takes a file as the request's body
    json_body: bool = True  # /accessv2 can carry it (a file body cannot be JSON)


SHARED = {
    "cluster/status": Command(cluster.status),
    "cluster/addnode": Command(cluster.addnode, changes=True),
    "cluster/enablenode": Command(cluster.enablenode, changes=True),
    "cluster/disablenode": Command(cluster.disablenode, changes=True),
    "cluster/deletenode": Command(cluster.deletenode, changes=True),
    "get": Command(cluster.get),
    "set": Command(cluster.set_, changes=True),
    "showiface": Command(cluster.showiface),
    "stats": Command(cluster.stats),
    "backup": Command(system.backup_file),
    "restore": Command(system.restore, changes=True, body=True, json_body=False),
    "installpatch": Command(system.installpatch, changes=True, body=True, json_body=False),
    "restorepatch": Command(system.restorepatch, changes=True),
    "reboot": Command(system.reboot, changes=True),
    "listvs": Command(services.listvs),
    "showvs": Command(services.showvs),
    "addvs": Command(services.addvs, changes=True),
    "modvs": Command(services.modvs, changes=True),
    "delvs": Command(services.delvs, changes=True),
    "addrs": Command(services.addrs, changes=True),
    "modrs": Command(services.modrs, changes=True),
    "delrs": Command(services.delrs, changes=True),
}

NODE = {
    "cluster/status": Command(unit.status),
    "cluster/create": Command(unit.create, changes=True),
    "cluster/joincluster": Command(unit.joincluster, changes=True),
    "reboot": Command(unit.reboot, changes=True),
}

# Where to run a command that exists only on the other kind of address.
ELSEWHERE = {
    "shared": "on a unit's own address, not on the cluster's shared address",
    "node": "on the cluster's shared address, not on a unit's own address",
}


def table(role):
    return NODE if role == "node" else SHARED


def other_table(role):
    return SHARED if role == "node" else NODE

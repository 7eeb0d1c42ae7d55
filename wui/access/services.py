"""Virtual Services and real servers with LoadMaster's names (vs, port, prot, rs, rsport, weight, ...).

The changes go through cluster.virtual_services.rules with the WUI form's fields, so the cluster's
restrictions and every field's check give the WUI's reasons.
"""

from django.forms.models import model_to_dict
from django.http import Http404

from cluster.models import RealServer, VirtualService
from cluster.virtual_services import rules
from cluster.virtual_services.forms import VirtualServiceForm
from wui.access.answers import Failure
from wui.access.call import yn

PERSIST = {"none": "none", "src": "source_ip", "active-cookie": "active_cookie"}
PERSIST_NAME = {v: k for k, v in PERSIST.items()}

# LoadMaster's modvs/addvs parameter -> (the WUI form's field, how to read it from the call).
VS_PARAMETERS = {
    "NickName": ("name", "text"),
    "Enable": ("enabled", "flag"),
    "Schedule": ("scheduling", "text"),
    "Persist": ("persistence", "persist"),
    "PersistTimeout": ("persistence_timeout", "text"),
    "Transparent": ("transparency", "flag"),
    "SubnetOriginating": ("subnet_originating", "flag"),
    "ForceL7": ("layer", "layer"),
    "CheckUrl": ("check_url", "text"),
    "CheckCodes": ("check_status", "text"),
    "Interface": ("interface", "text"),
}


def _vs_fields(vs):
    return {
        "Status": "Up" if vs.enabled else "Disabled",
        "Index": vs.pk,
        "VSAddress": vs.address,
        "VSPort": vs.port,
        "Protocol": vs.protocol,
        "NickName": vs.name,
        "Enable": yn(vs.enabled),
        "Schedule": vs.scheduling,
        "Persist": PERSIST_NAME.get(vs.persistence, vs.persistence),
        "PersistTimeout": vs.persistence_timeout,
        "Transparent": yn(vs.transparency),
        "SubnetOriginating": yn(vs.subnet_originating),
        "ForceL7": yn(int(vs.layer) == VirtualService.Layer.L7),
        "CheckType": "http",
        "CheckUrl": vs.check_url,
        "CheckCodes": vs.check_status,
        "Interface": vs.interface,
        "NumberOfRSs": len(vs.real_servers.all()),
        "Rs": [_rs_fields(vs, rs) for rs in sorted(vs.real_servers.all(), key=RealServer.sort_key)],
    }


def _rs_fields(vs, rs):
    return {
        "Status": "Up" if rs.enabled else "Disabled",
        "VSIndex": vs.pk,
        "RsIndex": rs.pk,
        "Addr": rs.address,
        "Port": rs.port,
        "Weight": rs.weight,
        "Enable": yn(rs.enabled),
    }


def _services():
    return sorted(VirtualService.objects.prefetch_related("real_servers"), key=VirtualService.sort_key)


def listvs(call):
    return {"VS": [_vs_fields(vs) for vs in _services()]}


def _find(call):
    """The service named by Index, or by vs, port and prot as LoadMaster's scripts name it."""
    services = VirtualService.objects.prefetch_related("real_servers")
    if call.get("Index") or (call.get("vs", "").isdigit() and not call.has("port")):
        # LoadMaster also takes the service's index as vs=.
        vs = services.filter(pk=call.integer("Index" if call.get("Index") else "vs", low=1)).first()
    else:
        address, port = call.require("vs"), call.integer("port", low=1, high=65535)
        vs = services.filter(address=address, port=port, protocol=_protocol(call)).first() if _ipv4(address) else None
    if vs is None:
        raise Failure("Unknown VS")
    return vs


def _protocol(call):
    prot = call.get("prot", "tcp").lower()
    if prot not in VirtualService.Protocol.values:
        raise Failure(f"Invalid prot: {prot[:10]!r}; use tcp or udp")
    return prot


def _ipv4(text):
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def showvs(call):
    return {"VS": _vs_fields(_find(call))}


def _form_data(call, current):
    data = {**current}
    for name, (field, kind) in VS_PARAMETERS.items():
        if not call.has(name):
            continue
        if kind == "flag":
            data[field] = call.flag(name)
        elif kind == "layer":
            data[field] = VirtualService.Layer.L7 if call.flag(name) else VirtualService.Layer.L4
        elif kind == "persist":
            value = call.get(name).lower()
            if value not in PERSIST:
                raise Failure(f"Invalid Persist: {value[:20]!r}; this cluster has {', '.join(PERSIST)}")
            data[field] = PERSIST[value]
        else:
            data[field] = call.get(name)
    return data


def _saved(save, *args):
    try:
        return save(*args)
    except rules.Refused as exc:
        raise Failure(str(exc)) from exc
    except Http404:
        raise Failure("Unknown VS") from None


def addvs(call):
    address, port = call.require("vs"), call.require("port")
    fresh = VirtualService(address=address, port=port, protocol=_protocol(call), name=f"{address}:{port}")
    data = _form_data(call, model_to_dict(fresh, fields=VirtualServiceForm.Meta.fields))
    vs, _ = _saved(rules.save_service, call.actor, data)
    return {"VS": _vs_fields(VirtualService.objects.prefetch_related("real_servers").get(pk=vs.pk))}


def modvs(call):
    vs = _find(call)
    data = _form_data(call, model_to_dict(vs, fields=VirtualServiceForm.Meta.fields))
    for name, field in (("VSAddress", "address"), ("VSPort", "port")):
        if call.has(name):
            data[field] = call.get(name)
    _saved(rules.save_service, call.actor, data, vs.pk)
    return {"VS": _vs_fields(VirtualService.objects.prefetch_related("real_servers").get(pk=vs.pk))}


def delvs(call):
    vs = _find(call)
    return {"Message": _saved(rules.delete_service, call.actor, vs.pk)}


def _find_rs(call, vs):
    """The real server named by RsIndex, or by rs and rsport."""
    servers = list(vs.real_servers.all())
    if call.has("RsIndex"):
        rs = next((r for r in servers if str(r.pk) == call.get("RsIndex")), None)
    else:
        address, port = call.require("rs"), call.integer("rsport", low=1, high=65535)
        rs = next((r for r in servers if r.address == address and r.port == port), None)
    if rs is None:
        raise Failure("Unknown real server")
    return rs


def addrs(call):
    vs = _find(call)
    data = {
        "address": call.require("rs"),
        "port": call.require("rsport"),
        "weight": call.get("weight", "1000"),
        "enabled": call.flag("enable", default=True),
    }
    _, rs, _ = _saved(rules.save_real_server, call.actor, data, vs.pk)
    return {"Rs": _rs_fields(vs, rs)}


def modrs(call):
    """Change a real server's weight, Enable or port (newport); it keeps its address."""
    vs = _find(call)
    rs = _find_rs(call, vs)
    data = {
        "address": rs.address,
        "port": call.get("newport", str(rs.port)),
        "weight": call.get("weight", str(rs.weight)),
        "enabled": call.flag("enable", default=rs.enabled),
    }
    _, rs, _ = _saved(rules.save_real_server, call.actor, data, vs.pk, rs.pk)
    return {"Rs": _rs_fields(vs, rs)}


def delrs(call):
    vs = _find(call)
    rs = _find_rs(call, vs)
    _saved(rules.delete_real_server, call.actor, vs.pk, rs.pk)
    return {"Message": f"Real server {rs} removed from Virtual Service {vs}"}

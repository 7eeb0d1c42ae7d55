"""What the machine is: hardware, interfaces, host key (the facts the cluster compares and pins)."""

import os
import platform
import socket

from nodes.agent.formats import TLS_CERTIFICATE, TLS_DIRECTORY, pem_certificate_fingerprint
from nodes.agent.state import node_home, read_json, running_version


def _sys_net(device, name):
    try:
        with open(f"/sys/class/net/{device}/{name}", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def interface_facts(spec):
    """Facts of one interface; spec names the kernel device that backs it."""
    device = spec.get("device", spec["name"])
    speed = _sys_net(device, "speed")
    mtu = _sys_net(device, "mtu")
    return {
        "name": spec["name"],
        "device": device,
        "mac": _sys_net(device, "address") or "",
        "speed_mbps": int(speed) if speed and speed.lstrip("-").isdigit() and int(speed) > 0 else None,
        "duplex": _sys_net(device, "duplex") or "unknown",
        "mtu": int(mtu) if mtu and mtu.isdigit() else None,
        "addresses": list(spec.get("addresses", [])),
    }


def _meminfo_kib():
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _is_virtual():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        return False


def facts():
    node = read_json("node.json", {})
    specs = node.get("interfaces") or [{"name": d} for d in sorted(os.listdir("/sys/class/net"))]
    st = os.statvfs(node_home())
    measured = {
        "cpu_count": os.cpu_count(),
        "memory_mib": _meminfo_kib() // 1024,
        "disk_gib": round(st.f_blocks * st.f_frsize / 2**30),
        "virtual": _is_virtual(),
    }
    # node.json may describe the machine's hardware (a virtual unit's assigned resources).
    hardware = {k: node.get("hardware", {}).get(k, v) for k, v in measured.items()}
    return {
        "hostname": node.get("hostname") or socket.gethostname(),
        **hardware,
        "machine": platform.machine(),
        "interfaces": [_with_local_choices(interface_facts(s)) for s in specs],
        "version": running_version(),
        "host_key": host_key(),
        "ssh_user": node.get("ssh_user", ""),
        "ssh_port": node.get("ssh_port", 22),
        "tls_fingerprint": wui_certificate_fingerprint(),
    }


def wui_certificate_fingerprint():
    """The SHA-256 fingerprint of the certificate this unit's WUI serves ("" before its first start)."""
    try:
        with open(os.path.join(node_home(), TLS_DIRECTORY, TLS_CERTIFICATE), encoding="ascii") as f:
            return pem_certificate_fingerprint(f.read())
    except (OSError, ValueError):
        return ""


def _with_local_choices(interface):
    """Add what the unit's own Network Setup chose for this interface (a node-local setting)."""
    own = read_json("local_network.json", {}).get("interfaces", {}).get(interface["name"], {})
    if "use_for_default_gateway" in own:
        interface["use_for_default_gateway"] = bool(own["use_for_default_gateway"])
    return interface


def host_key():
    path = read_json("node.json", {}).get("host_key_file", "/etc/ssh/ssh_host_ed25519_key.pub")
    try:
        with open(path, encoding="ascii") as f:
            return " ".join(f.read().split()[:2])
    except OSError:
        return ""

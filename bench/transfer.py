"""Patch transfer: a 64 MiB file sent to 4 nodes at once, Flotilla's SFTP next to OpenSSH's scp.

A real local cluster of sshd nodes on 127.0.12.x (the demo uses .10, the tests .11), agent only.
Both senders do what an operator's update does, one stream per node, all four at once, from a
cold start: Flotilla with a fresh `ssh.Pool` (connect, pinned host key, auth, SFTP into
incoming/ through `.part` and a rename), one thread per node as the product's fan-out; OpenSSH
with four `scp` processes at once (connect, auth, the same file into the same directory). The
clock covers the whole fan-out, so each side's start-up is in its number. Rounds rotate which
side goes first, every received file is checked against the source's SHA-256, and the page
cache is flushed before each timed send so that neither pays for the other's writeback. A third
sender, scp held to the cipher Flotilla negotiates, is reported beside the target's two.
"""

# ruff: noqa: E402 -- the project path and Django must be set up before the imports below

import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))  # run as a script: make the project importable
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")

import django

django.setup()

from django.conf import settings

from cluster import ssh
from tests.harness import SSH_PORT, Cluster

PREFIX = "127.0.12"
NODES = 4
SIZE_MIB = 64
ROUNDS = 5
MB = 10**6  # decimal megabytes, as scp and most tools print them
RESULT = BASE_DIR / "bench" / "results" / "transfer.json"


def make_file(directory):
    """Random bytes: nothing on the way (none of the two compresses by default) can shrink them."""
    path = Path(directory) / "update.patch"
    with open(path, "wb") as f:
        for _ in range(SIZE_MIB):
            f.write(os.urandom(2**20))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def targets(cluster):
    return [ssh.Target(f"node {n.n}", n.address, SSH_PORT, n.user, n.host_key_line) for n in cluster.nodes]


def known_hosts(cluster, directory):
    path = Path(directory) / "known_hosts"
    path.write_text("".join(f"[{n.address}]:{SSH_PORT} {n.host_key_line}\n" for n in cluster.nodes))
    return path


def send_flotilla(cluster, path, name):
    """The product's fan-out: a new pool (as a freshly started worker has), one thread per node."""
    pool = ssh.Pool(ssh.load_or_create_key(settings.CLUSTER_SSH_KEY))
    size = path.stat().st_size
    last, errors = {}, []

    def send(target):
        try:
            pool.put(target, path, name, progress=lambda sent, total: last.__setitem__(target, (sent, total)))
        except ssh.NodeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(t,)) for t in targets(cluster)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    pool.close_all()
    if errors:
        raise errors[0]
    # The callback is part of Pool.put's contract: it must have reported the whole file.
    assert all(last[t] == (size, size) for t in targets(cluster)), last
    return elapsed


def negotiated_cipher(cluster):
    """What the product's transport agreed on with these sshds (reads the pool's connection)."""
    pool = ssh.Pool(ssh.load_or_create_key(settings.CLUSTER_SSH_KEY))
    try:
        transport = pool._connection(targets(cluster)[0]).transport
        return transport.local_cipher
    finally:
        pool.close_all()


def send_scp(cluster, path, name, hosts, cipher=None):
    argv = ["scp", "-q", "-P", str(SSH_PORT), "-i", str(settings.CLUSTER_SSH_KEY), "-F", "none"]
    argv += ["-c", cipher] if cipher else []
    argv += ["-o", f"UserKnownHostsFile={hosts}", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "GlobalKnownHostsFile=none"]
    started = time.perf_counter()
    procs = [subprocess.Popen([*argv, str(path), f"{n.user}@{n.address}:incoming/{name}"]) for n in cluster.nodes]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"scp failed: exit codes {codes}")
    return elapsed


def received(cluster, name, digest):
    """Check every node got the file intact, then remove it (the next round starts empty)."""
    for node in cluster.nodes:
        incoming = node.home / "incoming"
        got = hashlib.sha256((incoming / name).read_bytes()).hexdigest()
        if got != digest:
            raise RuntimeError(f"node {node.n}: {name} arrived damaged")
        leftovers = [p.name for p in incoming.iterdir() if p.name != name]
        if leftovers:
            raise RuntimeError(f"node {node.n}: unexpected files in incoming/: {leftovers}")
        (incoming / name).unlink()
    os.sync()  # the deleted files' writeback must not land in the next timed send


def scp_version():
    return subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()


def measure(cluster, path, digest, hosts):
    size = path.stat().st_size
    senders = {
        "flotilla": lambda name: send_flotilla(cluster, path, name),
        "scp": lambda name: send_scp(cluster, path, name, hosts),
        # Not in the target: scp held to the cipher Flotilla negotiates, to tell the cipher's share.
        "scp_gcm": lambda name: send_scp(cluster, path, name, hosts, cipher=ssh.CIPHERS[0]),
    }
    times = {side: [] for side in senders}
    # The first send creates incoming/ on each node (Pool.put does), which scp needs.
    send_flotilla(cluster, path, "warmup.patch")
    received(cluster, "warmup.patch", digest)
    for i in range(ROUNDS):
        # Rotate who goes first: the machine is shared, and a slow spell should not hit one side only.
        order = list(senders)[i % len(senders) :] + list(senders)[: i % len(senders)]
        for side in order:
            name = f"{side}-{i}.patch"
            times[side].append(senders[side](name))
            received(cluster, name, digest)
            mb_s = size / MB / times[side][-1]
            print(f"round {i + 1} {side}: {mb_s:.1f} MB/s per node ({times[side][-1]:.2f} s)", flush=True)
    mb_s = {side: size / MB / statistics.median(t) for side, t in times.items()}
    flotilla_mb_s, scp_mb_s = mb_s["flotilla"], mb_s["scp"]
    return {
        "size_mib": SIZE_MIB,
        "nodes": len(cluster.nodes),
        "flotilla_mb_s": round(flotilla_mb_s, 1),
        "scp_mb_s": round(scp_mb_s, 1),
        "ratio": round(flotilla_mb_s / scp_mb_s, 2),
        "definition": (
            "MB/s per node = size in MB (10^6 bytes) / wall seconds of the whole parallel send to all nodes, "
            f"from a cold start (connect, auth, transfer, close); median of {ROUNDS} rounds"
        ),
        "scp_gcm_mb_s": round(mb_s["scp_gcm"], 1),
        "seconds": {side: [round(x, 3) for x in t] for side, t in times.items()},
        "flotilla_cipher": negotiated_cipher(cluster),
        "flotilla_settings": {
            "ciphers_first": list(ssh.CIPHERS),
            "window_size": ssh.WINDOW_SIZE,
            "max_packet": ssh.MAX_PACKET,
            "sftp_max_write": ssh.SFTP_MAX_WRITE,
            "pipelined": True,
        },
        "scp": f"{scp_version()}, SFTP protocol (the default since OpenSSH 9.0), default cipher",
        "scp_gcm": f"the same scp with -c {ssh.CIPHERS[0]}",
        "cpus": os.cpu_count(),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def main():
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-transfer-") as tmp:
        path, digest = make_file(tmp)
        cluster = Cluster(size=NODES, prefix=PREFIX, web=False, fresh=True, authorized_keys=[ssh.cluster_public_key()])
        try:
            cluster.start()
            result = measure(cluster, path, digest, known_hosts(cluster, tmp))
        finally:
            cluster.stop()
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

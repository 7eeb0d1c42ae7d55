"""The one way Flotilla talks to nodes: SSH with pinned host keys (paramiko).

Every call names its node in its errors, so the operator reads "node 3
(127.0.10.3): host key mismatch", never a bare traceback. No value is ever
handed to a remote shell unquoted: one-shot commands quote every argument,
and the persistent ``serve`` session sends arguments as JSON with no shell at
all.
"""

import json
import os
import shlex
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from nodes.agent.formats import atomic_write
from nodes.agent.formats import fingerprint as agent_fingerprint

AGENT = '"$NODE_HOME/bin/flotilla-agent"'
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 10.0
# What we let a node send us before it waits: outputs and downloads. An upload is paced by the
# node's window and packet size instead (OpenSSH: 2 MiB, 32 KiB per session channel), not by these.
WINDOW_SIZE = 64 * 2**20
MAX_PACKET = 256 * 2**10
# Offered first: paramiko seals a GCM packet in one OpenSSL call, where its default aes128-ctr adds
# an HMAC per packet and checks each incoming one with a byte-by-byte Python loop: on a 4-node send
# that took 1.5 to 2 times the client's CPU (bench/README.md). paramiko has no chacha20-poly1305.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# OpenSSH's sftp-server takes messages up to 256 KiB and advertises 255 KiB as its largest write.
SFTP_MAX_WRITE = 255 * 2**10
SFTP_WRITE_HEADER = 25  # length, type, request id, handle length, offset, data length; then the handle
CHANNEL_HEADER = 64  # what paramiko keeps free in each channel packet for the packet's own header


@dataclass(frozen=True)
class Target:
    """Where a node is and how it must prove who it is."""

    label: str
    address: str
    port: int
    username: str
    host_key: str  # "ssh-ed25519 AAAA...": the pinned key

    def __str__(self):
        return f"{self.label} ({self.address}:{self.port})"


class NodeError(Exception):
    """A node could not do what was asked; ``reason`` is short and stable."""

    reason = "failed"

    def __init__(self, target, detail=""):
        self.target = target
        self.detail = detail
        super().__init__(f"{target}: {self.reason}" + (f": {detail}" if detail else ""))


class Unreachable(NodeError):
    reason = "unreachable"


class AuthenticationFailed(NodeError):
    reason = "authentication failed"


class HostKeyMismatch(NodeError):
    reason = "host key mismatch (the node's SSH key changed; refusing to connect)"


class CommandFailed(NodeError):
    reason = "command failed"


class CommandTimeout(NodeError):
    reason = "command timed out"


# --- the cluster's own key -------------------------------------------------


def load_or_create_key(path):
    """The cluster's ed25519 key: made once, mode 0600, never in the database."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        atomic_write(path, pem, 0o600)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def public_key_line(key, comment="flotilla-cluster"):
    return f"{key.get_name()} {key.get_base64()} {comment}"


def fingerprint(host_key_line):
    """SHA256 fingerprint as OpenSSH prints it (the node shows the same, from the agent's code)."""
    return agent_fingerprint(host_key_line)


# --- connections -----------------------------------------------------------


def _open_transport(target, key, timeout):
    try:
        sock = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        raise Unreachable(target, str(exc)) from exc
    # paramiko leaves Nagle on: each small request would wait for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET)
    options = transport.get_security_options()
    options.ciphers = CIPHERS + tuple(c for c in options.ciphers if c not in CIPHERS)
    transport.banner_timeout = timeout
    transport.auth_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        _check_host_key(target, transport.get_remote_server_key())
        transport.auth_publickey(target.username, key)
    except NodeError:
        transport.close()
        raise
    except paramiko.AuthenticationException as exc:
        transport.close()
        raise AuthenticationFailed(target, str(exc)) from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        raise Unreachable(target, str(exc) or type(exc).__name__) from exc
    transport.set_keepalive(15)
    return transport


def _check_host_key(target, server_key):
    if not target.host_key:
        raise HostKeyMismatch(target, "no host key is pinned for this node")
    pinned_type, pinned_b64 = target.host_key.split()[:2]
    if server_key.get_name() != pinned_type or server_key.get_base64() != pinned_b64:
        got = fingerprint(f"{server_key.get_name()} {server_key.get_base64()}")
        raise HostKeyMismatch(target, f"expected {fingerprint(target.host_key)}, got {got}")


# Each lane is its own "serve" session with its own lock: a health check never waits behind a
# configuration push or a firmware step to the same node, so a slow command on one node cannot
# delay what the health round records for it or for any other node.
LANES = ("control", "health")


class _Connection:
    def __init__(self, target, transport):
        self.target = target
        self.transport = transport
        self.locks = {lane: threading.Lock() for lane in LANES}
        self.sessions = {}  # lane -> (channel, reader) of a running "serve"

    def alive(self):
        return self.transport.is_active()

    def close(self):
        for channel, reader in self.sessions.values():
            reader.close()
            channel.close()
        self.sessions = {}
        self.transport.close()


class Pool:
    """Persistent connections, one per node, shared by the threads of a process."""

    def __init__(self, key, connect_timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT):
        self.key = key
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._conns = {}
        self._opening = {}  # target -> lock held while a connection to it is being opened
        self._lock = threading.Lock()

    def _connection(self, target):
        with self._lock:
            conn = self._conns.get(target)
            if conn is not None and conn.alive():
                return conn
            opening = self._opening.setdefault(target, threading.Lock())
        # Connecting to a node that does not answer takes up to the connect timeout: only callers
        # for that node wait for it, never the calls to the other nodes.
        with opening:
            with self._lock:
                conn = self._conns.get(target)
                if conn is not None and conn.alive():
                    return conn
                self._conns.pop(target, None)
            if conn is not None:
                conn.close()
            conn = _Connection(target, _open_transport(target, self.key, self.connect_timeout))
            with self._lock:
                self._conns[target] = conn
            return conn

    def drop(self, target):
        with self._lock:
            conn = self._conns.pop(target, None)
        if conn is not None:
            conn.close()

    def close_all(self):
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()

    @contextmanager
    def _wire_errors(self, target, verb, timeout):
        """A command that fails on the wire, as the operator reads it; the next call opens a fresh connection."""
        try:
            yield
        except TimeoutError as exc:
            self.drop(target)
            raise CommandTimeout(target, f"{verb} gave no answer in {timeout or self.command_timeout:g} s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.drop(target)
            raise Unreachable(target, str(exc) or type(exc).__name__) from exc

    def run(self, target, verb, *args, timeout=None):
        """Run one agent command in its own channel; returns its JSON result."""
        conn = self._connection(target)
        command = " ".join([AGENT, shlex.quote(verb), *(shlex.quote(str(a)) for a in args)])
        with self._wire_errors(target, verb, timeout):
            channel = conn.transport.open_session(timeout=self.connect_timeout)
            channel.settimeout(timeout or self.command_timeout)
            channel.exec_command(command)
            out = _read_all(channel.recv)
            err = _read_all(channel.recv_stderr)
            code = channel.recv_exit_status()
            channel.close()
        return _parse(target, verb, code, out, err)

    def call(self, target, verb, *args, timeout=None, lane="control"):
        """Ask the node's long-lived agent over the open session of ``lane`` (no process start)."""
        reused = target in self._conns
        try:
            return self._call_once(target, verb, args, timeout, lane)
        except Unreachable:
            if not reused:
                raise
            # A connection kept open may have died with the node's last reboot: one fresh try tells.
            return self._call_once(target, verb, args, timeout, lane)

    def _call_once(self, target, verb, args, timeout, lane):
        conn = self._connection(target)
        request = json.dumps({"verb": verb, "args": list(args)}).encode() + b"\n"
        with conn.locks[lane], self._wire_errors(target, verb, timeout):
            channel, reader = conn.sessions.get(lane) or self._start_session(conn, lane)
            channel.settimeout(timeout or self.command_timeout)
            channel.sendall(request)
            line = reader.readline()
        if not line:
            self.drop(target)
            raise Unreachable(target, "the agent session closed")
        return _parse(target, verb, 0, line, b"")["result"]

    def put(self, target, local_path, name, progress=None):
        """Send a file into the node's incoming/ directory over SFTP; it appears whole or not at all."""
        conn = self._connection(target)
        try:
            sftp = paramiko.SFTPClient.from_transport(
                conn.transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET
            )
            try:
                if "incoming" not in sftp.listdir("."):
                    sftp.mkdir("incoming", 0o700)
                partial = f"incoming/.{name}.part"
                with open(local_path, "rb") as source, sftp.open(partial, "wb") as remote:
                    remote.set_pipelined(True)
                    # Each write fills whole channel packets, as many as the server takes in one
                    # request: paramiko's own 32 KiB write is 93 bytes more than one packet holds,
                    # so each went out as two packets, and each write costs a reply to process.
                    packet = sftp.sock.out_max_packet_size - CHANNEL_HEADER
                    overhead = SFTP_WRITE_HEADER + len(remote.handle)
                    packets = max(1, (SFTP_MAX_WRITE + overhead) // packet)
                    remote.MAX_REQUEST_SIZE = min(packets * packet - overhead, SFTP_MAX_WRITE)
                    total, sent = os.fstat(source.fileno()).st_size, 0
                    while chunk := source.read(remote.MAX_REQUEST_SIZE):
                        remote.write(chunk)
                        sent += len(chunk)
                        if progress is not None:
                            progress(sent, total)
                # Pipelined, paramiko drops the replies it does not wait for, failed writes too (a full
                # disk raised nothing): the size on the node is what tells a short file.
                arrived = sftp.stat(partial).st_size
                if arrived != sent:
                    raise OSError(f"size mismatch: {arrived} bytes arrived of {sent}")
                sftp.posix_rename(partial, f"incoming/{name}")
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.drop(target)
            raise Unreachable(target, f"sending {name}: {exc}") from exc

    def _start_session(self, conn, lane):
        channel = conn.transport.open_session(timeout=self.connect_timeout)
        channel.exec_command(f"exec {AGENT} serve")
        conn.sessions[lane] = (channel, channel.makefile("rb"))
        return conn.sessions[lane]


def _read_all(recv):
    chunks = []
    while chunk := recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(target, verb, code, out, err):
    try:
        document = json.loads(out) if out.strip() else {}
    except ValueError:
        document = None
    if document is None or code != 0 or "error" in document:
        detail = (document or {}).get("error") or err.decode(errors="replace").strip() or f"exit {code}"
        raise CommandFailed(target, f"{verb}: {detail}")
    return document


_pool = None
_pool_lock = threading.Lock()


def get_pool():
    """This process's pool, built from settings on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from django.conf import settings

            _pool = Pool(
                load_or_create_key(settings.CLUSTER_SSH_KEY), settings.SSH_CONNECT_TIMEOUT, settings.SSH_COMMAND_TIMEOUT
            )
        return _pool


def cluster_public_key():
    from django.conf import settings

    return public_key_line(load_or_create_key(settings.CLUSTER_SSH_KEY))

"""Real servers for the local cluster: small HTTP processes behind the Virtual Services.

Each real server is its own OS process on loopback (PREFIX.201, .202, ...), so that a test can
kill one as a machine would die, and so that the load they take does not share the test's GIL.
Every GET or HEAD is answered 200 with a body naming the server and the peer address, e.g.
``rs1 127.0.11.201:8080 from 127.0.11.3``: nodes originate their backend connections from their
own address, so one response says which real server answered and which node carried it.

Paths: ``/health`` for health checks, ``/slow?s=N`` holds the answer N seconds (at most 30) for
drain tests; anything else is the plain answer. HTTP/1.1 keep-alive.

The server side runs as a plain script with the standard library only (``python
tests/harness/real_servers.py serve NAME ADDRESS PORT``, or ``python -m
tests.harness.real_servers serve ...``): a real server must not pay for importing the harness.
"""

import atexit
import contextlib
import http.client
import http.server
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

if __package__:
    # Imported as tests.harness.real_servers. Run as a file (the server side) it needs none of the harness.
    from tests.harness.local_cluster import ROOT, HarnessError, stop_pidfile

SLOW_MAX_S = 30
IDLE_TIMEOUT_S = 60  # an idle keep-alive connection holds a thread; a proxy reopens when it needs to


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    disable_nagle_algorithm = True  # small answers on kept-alive connections would wait for delayed ACKs
    timeout = IDLE_TIMEOUT_S
    server_version = "flotilla-rs"
    sys_version = ""

    def do_GET(self):
        self._answer(send_body=True)

    def do_HEAD(self):
        self._answer(send_body=False)

    def _answer(self, send_body):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/slow":
            try:
                seconds = float(urllib.parse.parse_qs(url.query).get("s", ["1"])[0])
            except ValueError:
                seconds = 1.0
            time.sleep(min(max(seconds, 0.0), SLOW_MAX_S))
        server = self.server
        body = f"{server.name} {server.address}:{server.port} from {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # one line per request would cost more than the answer; errors still reach stderr


class Server(http.server.ThreadingHTTPServer):
    # socketserver's default backlog of 5 refuses connections under a burst of new ones (wrk, drain loops).
    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, name, address, port):
        self.name, self.address, self.port = name, address, port
        super().__init__((address, port), Handler)


def serve(name, address, port):
    server = Server(name, address, int(port))

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return: it must not run in the thread serving.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


# --- the harness side -------------------------------------------------------------------------


class RealServers:
    """``count`` real servers on PREFIX.201.. port ``port``, their pid files and logs under ``root``.

    ``servers`` is [(name, address, port)], ``addresses`` the addresses. ``start()`` first stops
    whatever a crashed run left under the same root, and registers ``stop()`` at exit.
    """

    FIRST_OCTET = 201

    def __init__(self, prefix, count=3, port=8080, root=None):
        self.prefix, self.port = prefix, port
        # Not under the cluster's ROOT / prefix: a fresh cluster removes that, pid files of running servers too.
        self.root = Path(root) if root else ROOT / "real-servers" / prefix
        self.servers = [(f"rs{i + 1}", f"{prefix}.{self.FIRST_OCTET + i}", port) for i in range(count)]
        self._children = []

    @property
    def addresses(self):
        return [address for _, address, _ in self.servers]

    def pidfile(self, name):
        return self.root / f"{name}.pid"

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.stop()
        atexit.register(self.stop)
        for name, address, port in self.servers:
            with open(self.root / f"{name}.log", "ab") as log:
                proc = subprocess.Popen(
                    # As a file, isolated (-I): the standard library only, whatever this process's environment.
                    [sys.executable, "-I", str(Path(__file__).resolve()), "serve", name, address, str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # stop_pidfile signals its group; never ours
                )
            # Written by us at once, not by the server once it is up: a run that dies now leaves it to clean up.
            self.pidfile(name).write_text(f"{proc.pid}\n")
            self._children.append(proc)
        try:
            for server, proc in zip(self.servers, self._children, strict=True):
                self._wait_answering(server, proc)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        atexit.unregister(self.stop)
        for name, _, _ in self.servers:
            pidfile = self.pidfile(name)
            if _ours(pidfile):
                stop_pidfile(pidfile)
            else:
                pidfile.unlink(missing_ok=True)  # stale: its pid now belongs to someone else
        # Reap our own children, so that no zombie outlives the run.
        for proc in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._children = []

    def _wait_answering(self, server, proc, timeout=10.0):
        """Until the server answers as itself: something else holding the address answers too, but not so."""
        name, address, port = server
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise HarnessError(f"real server {name} on {address}:{port} exited; see {self.root / name}.log")
            connection = http.client.HTTPConnection(address, port, timeout=1)
            try:
                connection.request("GET", "/health")
                if connection.getresponse().read().decode().startswith(f"{name} {address}:{port} "):
                    return
                raise HarnessError(f"{address}:{port} is held by something other than real server {name}")
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
            finally:
                connection.close()
        raise HarnessError(f"real server {name} did not answer on {address}:{port} within {timeout:g} s")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _ours(pidfile):
    """Whether the pid file names a real server still running: pids are reused after a crash."""
    try:
        pid = int(pidfile.read_text().strip())
        return b"real_servers" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def main(argv):
    if len(argv) == 4 and argv[0] == "serve":
        serve(*argv[1:])
        return 0
    print("usage: real_servers.py serve NAME ADDRESS PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

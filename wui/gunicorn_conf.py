"""Gunicorn's configuration for every Flotilla WUI (``gunicorn -c python:wui.gunicorn_conf wui.wsgi``).

HTTPS on the bound address with the unit's certificate (wui/tls.py), made on the first start for
the unit's addresses; plain HTTP on FLOTILLA_HTTP_PORT (default 8080, 0: none) of the same address
answers every request with a redirect to the same path over HTTPS.

Gunicorn asks for the TLS context on every new connection: ``ssl_context`` keeps one per worker and
builds it again when the certificate file was replaced (a new file: ``os.replace``), so a replaced
certificate is served from the next connection on, without a restart, and an unchanged one costs a
stat instead of loading the key and certificate for every connection.
"""

import ipaddress
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from wui import tls

certfile = str(tls.served_file(tls.directory()))  # the key is in the same file
HTTP_PORT = int(os.environ.get("FLOTILLA_HTTP_PORT", "8080"))
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


_context = (None, None)


def ssl_context(conf, default_ssl_context_factory):
    global _context
    found = os.stat(conf.certfile)
    # Stat before loading: a replacement in between costs one more build, never a stale context.
    version = (found.st_ino, found.st_mtime_ns, found.st_size)
    if _context[0] != version:
        _context = (version, default_ssl_context_factory())
    return _context[1]


def unit_addresses(environ=os.environ):
    """The unit's interface addresses, and the shared address while it is the cluster's admin."""
    home = environ.get("NODE_HOME")
    if not home:
        return []

    def read(name):
        try:
            with open(os.path.join(home, name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    addresses = [
        address.split("/")[0]
        for interface in read("node.json").get("interfaces", [])
        for address in interface.get("addresses", [])
    ]
    membership = read("membership.json")
    if membership.get("mode") == "admin" and membership.get("shared_address"):
        addresses.append(membership["shared_address"])
    return addresses


def _bound(server):
    """The (host, port) addresses gunicorn listens on (a Unix socket has no TLS redirect to offer)."""
    return [address for address in server.cfg.address if isinstance(address, tuple)]


def _wildcard(host):
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def on_starting(server):
    """The certificate exists before the first connection: made now on the unit's first start."""
    hosts = [host for host, _ in _bound(server) if not _wildcard(host)] or ["localhost", "127.0.0.1"]
    tls.ensure(tls.directory(), [*hosts, *unit_addresses()])


def when_ready(server):
    if not HTTP_PORT:
        return
    for host, https_port in _bound(server):
        try:
            listener = HTTPServer((host, HTTP_PORT), _redirector(https_port))
        except OSError as exc:
            # A convenience: its port taken (a Virtual Service on it) must not keep the WUI down.
            server.log.warning("No plain-HTTP redirect on %s:%s: %s", host, HTTP_PORT, exc)
            continue
        threading.Thread(target=listener.serve_forever, daemon=True, name=f"http-redirect-{host}").start()


def _host_of(header, fallback):
    """The host the client asked for (without its port), or the listener's own address."""
    host = header or ""
    host = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    return host if _HOST.fullmatch(host) else fallback


def _redirector(https_port):
    class Redirect(BaseHTTPRequestHandler):
        """Plain HTTP: 301 (308 for a form's POST, so that it is not turned into a GET) to the same URL over HTTPS."""

        timeout = 5  # a client that sends nothing does not hold the listener
        server_version = "Flotilla"
        sys_version = ""

        def _answer(self):
            host = _host_of(self.headers.get("Host"), self.server.server_address[0])
            path = self.path if self.path.startswith("/") else "/"
            self.send_response(301 if self.command in ("GET", "HEAD") else 308)
            self.send_header("Location", f"https://{host}:{https_port}{path}")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

        def log_message(self, format, *args):  # noqa: A002  (the stdlib's signature)
            pass

    return Redirect

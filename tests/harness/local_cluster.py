"""The local cluster: real nodes on one machine, for the demo and the tests.

Node N listens on loopback address PREFIX.N: its own OpenSSH sshd on port
2222 (own host key, own authorized_keys, its own unprivileged login user, and
``SetEnv NODE_HOME``), its own state directory and its own node-local WUI on
port 8000 (HTTPS with the certificate the unit made on its first start; plain
HTTP on 8080 redirects to it). The shared WUI goes on PREFIX.90:8000.

Node daemons keep pid files under the node's directory, so that any process
(the demo, a test, a Celery worker carrying out a reboot) can stop and start
a node's services with nothing but this module. Everything started here is
stopped by ``stop()``, also on SIGINT/SIGTERM and at interpreter exit.
"""

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from nodes.agent.build import build_zipapp

BASE_DIR = Path(__file__).resolve().parents[2]  # tests/harness/local_cluster.py
ROOT = Path(os.environ.get("FLOTILLA_HARNESS_ROOT", "/var/lib/flotilla-harness"))
SSH_PORT = 2222
WUI_PORT = 8000  # HTTPS
HTTP_PORT = 8080  # plain HTTP, redirected to WUI_PORT
SHARED_OCTET = 90
SSHD = "/usr/sbin/sshd"
HAPROXY = "/usr/sbin/haproxy"
AGENT_PYTHON = "/usr/bin/python3"
REBOOT_OFF_SECONDS = 1.5  # longer than the 1 s between health checks


class HarnessError(RuntimeError):
    pass


def _run(*cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_fields(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_state(pid):
    fields = _proc_fields(pid)
    return fields[0] if fields else "Z"


def _process_group(pid):
    fields = _proc_fields(pid)
    return int(fields[2]) if fields else None


def _group_members(group):
    members = []
    for entry in os.listdir("/proc"):
        fields = entry.isdigit() and _proc_fields(entry)
        if fields and int(fields[2]) == group and fields[0] not in "ZX":
            members.append(int(entry))
    return members


def _all_at_once(func, items):
    """func(item) for every item, in threads of their own (plain threads: this also runs at exit)."""
    threads = [threading.Thread(target=func, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stop_pidfile(pidfile, timeout=5.0):
    """Stop a daemon and everything in its process group (a WUI's workers, a worker's scheduler)."""
    pidfile = Path(pidfile)
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    if _pid_alive(pid):
        # Each daemon detaches into a session of its own; never signal the group we run in.
        group = _process_group(pid)
        if group == os.getpgrp():
            group = None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        # What the daemon did not stop itself goes as it would at a power-off.
        while group is not None and _group_members(group) and time.monotonic() < deadline + timeout:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.02)
    pidfile.unlink(missing_ok=True)


def stop_haproxy(pidfile, timeout=1.0):
    """Power a unit's HAProxy off: SIGTERM to every pid in its file, SIGKILL to what is left shortly after."""
    try:
        pids = [int(word) for word in Path(pidfile).read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def wait_for_port(address, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise HarnessError(f"nothing answered on {address}:{port} within {timeout:g} s")


def https_context(ca_file):
    """Verifies a WUI's certificate against ca_file (the unit's own certificate, or the cluster's bundle)."""
    return ssl.create_default_context(cafile=str(ca_file))


def wait_for_http(url, timeout=30.0, ca_file=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Read again at every try: the unit makes its certificate as its WUI starts.
            context = https_context(ca_file) if ca_file else None
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status < 500:
                    return
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    raise HarnessError(f"{url} did not answer within {timeout:g} s")


class Node:
    """One simulated machine: its directory, its login user, its daemons."""

    def __init__(self, cluster, n):
        self.cluster = cluster
        self.n = n
        self.address = f"{cluster.prefix}.{n}"
        self.root = cluster.root / f"node{n}"
        self.home = self.root / "home"  # NODE_HOME, owned by the node's user
        self.etc = self.root / "etc"
        self.run = self.root / "run"
        self.user = f"flotilla-{cluster.prefix.split('.')[2]}-{n}"
        self.wui_url = f"https://{self.address}:{WUI_PORT}"
        self.lock = threading.RLock()  # a reboot and a reset of the same machine never overlap
        self.rebooting = threading.Event()
        self.resets = 0
        self.fresh_state = None  # what the machine looked like right after its last factory reset
        self.kept = 0  # factory resets skipped: the machine was as its last reset left it

    @property
    def ca_file(self):
        """The certificate this unit's WUI serves (and, on the admin unit, the shared WUI): it verifies them."""
        return self.home / "tls" / "wui.crt"

    @property
    def host_key(self):
        return (self.etc / "ssh_host_ed25519_key.pub").read_text().split()[0:2]

    @property
    def host_key_line(self):
        return " ".join(self.host_key)

    # -- preparing the machine --

    def prepare(self):
        for d in (self.etc, self.run, self.home / "bin", self.home / ".ssh"):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.root, self.etc, self.run):
            os.chmod(d, 0o755)
        self._ensure_user()
        key = self.etc / "ssh_host_ed25519_key"
        if not key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.address, "-f", str(key))
        self._install_agent()
        self._write_node_json()
        (self.etc / "sshd_config").write_text(self._sshd_config())
        keys = self.home / ".ssh" / "authorized_keys"
        if not keys.exists():
            keys.write_text("".join(k + "\n" for k in self.cluster.authorized_keys))
        for path in (self.home, self.home / ".ssh", keys):
            shutil.chown(path, self.user, self.user)
        os.chmod(self.home, 0o755)
        os.chmod(self.home / ".ssh", 0o700)
        os.chmod(keys, 0o600)

    def _ensure_user(self):
        try:
            _run("id", "-u", self.user)
        except subprocess.CalledProcessError:
            _run(
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                str(self.home),
                "--shell",
                "/bin/sh",
                "--user-group",
                self.user,
            )
        # A user made by useradd is "locked": sshd without PAM refuses it.
        _run("usermod", "-p", "*", "-d", str(self.home), self.user)

    def _install_agent(self):
        build_zipapp(self.home / "bin" / "flotilla-agent", interpreter=f"{AGENT_PYTHON} -IS")

    def _write_node_json(self):
        path = self.home / "node.json"
        if path.exists():
            described = json.loads(path.read_text())
            if described.get("haproxy") != str(self.cluster.haproxy):  # written before units ran HAProxy
                path.write_text(json.dumps({**described, "haproxy": str(self.cluster.haproxy)}))
            return
        path.write_text(
            json.dumps(
                {
                    "hostname": f"lb{self.n}",
                    "interfaces": [{"name": "eth0", "device": "lo", "addresses": [f"{self.address}/24"]}],
                    "host_key_file": str(self.etc / "ssh_host_ed25519_key.pub"),
                    "ssh_user": self.user,
                    "ssh_port": SSH_PORT,
                    "haproxy": str(self.cluster.haproxy),
                }
            )
        )
        shutil.chown(path, self.user, self.user)

    def _sshd_config(self):
        return "\n".join(
            [
                f"ListenAddress {self.address}",
                f"Port {SSH_PORT}",
                f"HostKey {self.etc / 'ssh_host_ed25519_key'}",
                f"PidFile {self.run / 'sshd.pid'}",
                f"AuthorizedKeysFile {self.home / '.ssh' / 'authorized_keys'}",
                f"AllowUsers {self.user}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin no",
                "UsePAM no",
                "StrictModes yes",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "MaxSessions 64",
                "MaxStartups 64:30:128",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                f"SetEnv NODE_HOME={self.home}",
                "",
            ]
        )

    # -- daemons --

    def start(self):
        with self.lock:
            self._start()

    def _start(self):
        if self.running():
            return
        self.agent("boot")
        _run(SSHD, "-f", str(self.etc / "sshd_config"), "-E", str(self.run / "sshd.log"))
        admin = self.membership().get("mode") == "admin"
        if self.cluster.web:
            self._start_wui()
            if admin:
                self._start_control_plane()
        wait_for_port(self.address, SSH_PORT)
        if self.cluster.web:
            wait_for_http(f"{self.wui_url}/health", ca_file=self.ca_file)
            if admin:
                shared = self.membership()["shared_address"]
                wait_for_http(f"https://{shared}:{WUI_PORT}/health", ca_file=self.ca_file)

    def agent(self, *args):
        """Run the node's agent as its init system would (as root, on the node's own state)."""
        agent = str(self.home / "bin" / "flotilla-agent")
        out = _run(AGENT_PYTHON, "-IS", agent, *args, env={"NODE_HOME": str(self.home), "PATH": "/usr/bin:/bin"})
        return json.loads(out.stdout)

    def membership(self):
        try:
            return json.loads((self.home / "membership.json").read_text())
        except (OSError, ValueError):
            return {"mode": "standalone"}

    def env(self, role="node"):
        """The environment of this unit's own Flotilla processes."""
        return {
            **os.environ,
            **self.cluster.wui_env,
            "FLOTILLA_ROLE": role,
            "NODE_HOME": str(self.home),
            "FLOTILLA_VAR_DIR": str(self.root / "var"),
            "CELERY_BROKER_URL": "flotilla-fs://",
            "DATABASE_URL": f"sqlite:///{self.root / 'wui.sqlite3'}",
        }

    def _start_wui(self):
        if not (self.root / "wui.sqlite3").exists():
            shutil.copy(self.cluster.template_db, self.root / "wui.sqlite3")
        self._gunicorn(self.address, "wui", self.env("node"))

    def _gunicorn(self, address, name, env):
        argv = [self.cluster.python, "-m", "gunicorn", "wui.wsgi", "--daemon", "--bind", f"{address}:{WUI_PORT}"]
        argv += ["--config", "python:wui.gunicorn_conf"]  # HTTPS, the certificate, the plain-HTTP redirect
        argv += ["--workers", "1", "--threads", "8", "--graceful-timeout", "2", "--pid", str(self.run / f"{name}.pid")]
        argv += ["--error-logfile", str(self.run / f"{name}.log"), "--chdir", str(BASE_DIR), "--no-control-socket"]
        subprocess.run(argv, env=env, check=True, cwd=BASE_DIR)

    def _start_control_plane(self):
        """The admin unit holds the shared address: the shared WUI and the worker run here."""
        env = self.env("shared")
        self._gunicorn(self.membership()["shared_address"], "shared", env)
        argv = [self.cluster.python, "-m", "celery", "--workdir", str(BASE_DIR), "-A", "wui", "worker", "-B"]
        argv += ["--detach", "-P", "threads"]
        argv += ["-c", "8", "-l", "warning", "--pidfile", str(self.run / "worker.pid")]
        argv += ["--logfile", str(self.run / "worker.log")]
        subprocess.run(argv, env=env, check=True, cwd=BASE_DIR)

    def stop(self):
        """Take the node's services down, as a power-off would: sessions die too."""
        with self.lock:
            self._stop()

    def settle(self, timeout=30):
        """Wait for a requested reboot to be carried out (tests act on a machine at rest)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and ((self.home / "reboot.request").exists() or self.rebooting.is_set()):
            time.sleep(0.05)
        with self.lock:
            pass

    def _stop(self):
        # All at once, as a power-off: a unit stops in the time of its slowest daemon, not their sum.
        _all_at_once(stop_pidfile, [self.run / f"{name}.pid" for name in ("worker", "shared", "wui", "sshd")])
        stop_haproxy(self.home / "haproxy" / "haproxy.pid")
        # Per-connection sshd children outlive the listener: end the node user's
        # processes so that open sessions drop, as they would on a real reboot.
        subprocess.run(["pkill", "-KILL", "-u", self.user], capture_output=True)

    def restart(self):
        with self.lock:
            self.stop()
            self.start()

    def reboot(self, resets=None):
        """The init system's reboot: never lets an error escape its thread."""
        try:
            with self.lock:
                (self.home / "reboot.request").unlink(missing_ok=True)
                if resets is not None and resets != self.resets:
                    return  # the machine was reset since it asked: the request died with it
                if self.cluster.stopped:
                    return  # the whole cluster was switched off: nothing comes back up
                self.stop()
                # A real unit is off for a while: health checks must see it go down, as they would.
                time.sleep(REBOOT_OFF_SECONDS)
                if not self.cluster.stopped:
                    self.start()
        except Exception as exc:  # noqa: BLE001  (recorded; the next reboot request tries again)
            with open(self.run / "reboot-errors.log", "a") as log:
                log.write(f"{time.ctime()}: {exc!r}\n")
        finally:
            self.rebooting.clear()

    STATE_FILES = (
        "membership.json",
        "join.json",
        "config.json",
        "config.prev.json",
        "traffic.json",
        "reboot.request",
        "node.log",
        "version.json",
        "node.json",
        "slots.json",
        "staged.json",
        "local_network.json",
    )

    def factory_reset(self, only_if_changed=False):
        """Back to a fresh standalone unit: no cluster, no state, only the installer's key.

        only_if_changed: a machine still exactly as its last reset left it (the same files, the
        same daemons, no session open, no reboot pending) is left as it is: it is already fresh.
        Returns whether the machine was reset.
        """
        with self.lock:
            if only_if_changed and self.untouched():
                self.kept += 1
                return False
            self._factory_reset()
            return True

    def state(self):
        """Everything a test can change on this machine and a reset puts back: every file and
        directory under its root (but the daemons' own logs), and which daemons run."""
        files = []
        for directory, dirs, names in os.walk(self.root):
            for name in (".", *dirs, *names):
                path = os.path.join(directory, name)
                if directory == str(self.run) and name.endswith(".log"):
                    continue  # appended by the daemons themselves
                if directory == str(self.home / "haproxy") and name in ("stats.sock", "haproxy.pid"):
                    continue  # HAProxy's own, replaced at every start: its pid is among the daemons
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                # ctime too: no write, chmod or chown goes unseen, even one that puts a file back as it was
                files.append(
                    (path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid, st.st_gid)
                )
        daemons = []
        for name in ("worker", "shared", "wui", "sshd"):
            with contextlib.suppress(OSError, ValueError):
                daemons.append((name, int((self.run / f"{name}.pid").read_text())))
        with contextlib.suppress(OSError, ValueError):
            daemons += [("haproxy", int(pid)) for pid in (self.home / "haproxy" / "haproxy.pid").read_text().split()]
        return sorted(files), daemons

    def untouched(self):
        if self.fresh_state is None or self.rebooting.is_set() or not self.running():
            return False
        files, daemons = self.state()
        found = subprocess.run(["pgrep", "-u", self.user], capture_output=True, text=True).stdout.split()
        if set(map(int, found)) - {pid for name, pid in daemons if name == "haproxy"}:
            return False  # a session is still open on it (HAProxy runs as the node's user too)
        return (files, daemons) == self.fresh_state and all(_pid_alive(pid) for _, pid in daemons)

    def _factory_reset(self):
        self.resets += 1
        self.stop()
        for name in self.STATE_FILES:
            (self.home / name).unlink(missing_ok=True)
        for directory in ("slots", "incoming", "haproxy", "tls"):
            shutil.rmtree(self.home / directory, ignore_errors=True)
        (self.root / "wui.sqlite3").unlink(missing_ok=True)
        shutil.rmtree(self.root / "var", ignore_errors=True)
        (self.home / ".ssh" / "authorized_keys").unlink(missing_ok=True)
        self.prepare()
        self._start()
        self.fresh_state = self.state()

    def running(self):
        pidfile = self.run / "sshd.pid"
        try:
            return _pid_alive(int(pidfile.read_text()))
        except (OSError, ValueError):
            return False


class Cluster:
    """N nodes on PREFIX.1..PREFIX.N, and optionally the control plane on PREFIX.90."""

    def __init__(
        self,
        size=4,
        prefix="127.0.10",
        web=True,
        authorized_keys=(),
        wui_env=None,
        python=sys.executable,
        root=None,
        fresh=False,
    ):
        self.size = size
        self.prefix = prefix
        self.web = web
        self.authorized_keys = list(authorized_keys)
        self.wui_env = dict(wui_env or {})
        self.python = python
        self.root = Path(root) if root else ROOT / prefix
        self.fresh = fresh
        self.shared_address = f"{prefix}.{SHARED_OCTET}"
        self.shared_url = f"https://{self.shared_address}:{WUI_PORT}"
        self.nodes = [Node(self, n) for n in range(1, size + 1)]
        self.template_db = self.root / "node-wui-template.sqlite3"
        self.haproxy = self.root / "haproxy"  # the units' data plane, allowed low ports and foreign addresses
        self.children = []
        self.stopped = False

    def node(self, n):
        return self.nodes[n - 1]

    @property
    def ca_file(self):
        """One PEM file that verifies every unit's WUI and the shared WUI: each unit's own self-signed
        certificate, read again at every use (a unit makes a new one after a factory reset)."""
        bundle = self.root / "wui-certificates.pem"
        certificates = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                certificates.append(node.ca_file.read_text())
        tmp = bundle.with_name(f".{bundle.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text("".join(certificates))
        os.replace(tmp, bundle)
        return bundle

    def supervise(self):
        """Act on reboot requests, as each machine's init system would."""
        self._stop_supervising = threading.Event()
        threading.Thread(target=self._supervise, daemon=True, name="harness-supervisor").start()

    def _supervise(self):
        while not self._stop_supervising.wait(0.1):
            for node in self.nodes:
                try:
                    age = time.time() - (node.home / "reboot.request").stat().st_mtime
                except OSError:
                    continue
                if age > 0.3 and not node.rebooting.is_set():  # let the page that asked be sent first
                    node.rebooting.set()
                    threading.Thread(target=node.reboot, args=(node.resets,), daemon=True).start()

    def start(self):
        check_system()
        self.stopped = False
        Path("/run/sshd").mkdir(exist_ok=True)
        self.stop_nodes()
        if self.fresh and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        _install_cleanup(self)
        self._install_haproxy()
        if self.web:
            self._build_template_db()
        for node in self.nodes:
            node.prepare()
        threads = [threading.Thread(target=node.start) for node in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for node in self.nodes:
            if not node.running():
                raise HarnessError(f"node {node.n} did not start; see {node.run}")
            if self.fresh:
                node.fresh_state = node.state()  # as a factory reset leaves it
        self.supervise()
        return self

    def _install_haproxy(self):
        """A copy of HAProxy that a node's own user may run on ports below 1024 and on Virtual Service
        addresses (IP_TRANSPARENT): file capabilities, so that nothing else on the machine gains them."""
        shutil.copy(HAPROXY, self.haproxy)
        os.chmod(self.haproxy, 0o755)
        _run("setcap", "cap_net_bind_service,cap_net_admin=+ep", str(self.haproxy))

    def _build_template_db(self):
        env = {
            **os.environ,
            **self.wui_env,
            "FLOTILLA_ROLE": "node",
            "CELERY_BROKER_URL": "flotilla-fs://",
            "FLOTILLA_VAR_DIR": str(self.root / "template-var"),
            "DATABASE_URL": f"sqlite:///{self.template_db}",
        }
        self.template_db.unlink(missing_ok=True)
        manage = [self.python, str(BASE_DIR / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True)
        if env.get("FLOTILLA_ADMIN_PASSWORD"):
            subprocess.run(
                [*manage, "createadmin", "--username", env.get("FLOTILLA_ADMIN_USER", "admin"), "--password-from-env"],
                env=env,
                check=True,
                capture_output=True,
            )

    def spawn(self, name, argv, env):
        """A control-plane process owned by this harness (shared WUI, worker)."""
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append(proc)
        return proc

    def factory_reset(self, only_if_changed=False):
        """Every node back to a fresh standalone unit (only_if_changed: those a test changed)."""
        threads = [
            threading.Thread(target=node.factory_reset, kwargs={"only_if_changed": only_if_changed})
            for node in self.nodes
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop_nodes(self):
        # In parallel: Ctrl-C on the demo (or the end of a test session) takes seconds, and nothing is
        # left running because whoever waits for it gave up first.
        _all_at_once(lambda node: node.stop(), self.nodes)

    def stop(self):
        """Stop every process this cluster started: a reboot under way does not bring its node back."""
        if self in _clusters:
            _clusters.remove(self)  # stopped once: the exit handler has nothing left to do
        self.stopped = True
        if getattr(self, "_stop_supervising", None):
            self._stop_supervising.set()
        for proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.children = []
        self.stop_nodes()


def check_system():
    missing = [p for p in (SSHD, HAPROXY, AGENT_PYTHON, "/usr/bin/ssh-keygen") if not Path(p).exists()]
    if missing:
        raise HarnessError(f"missing {', '.join(missing)}: install openssh-server, haproxy and python3 (make deps)")
    if os.geteuid() != 0:
        raise HarnessError("the local cluster needs root: it starts sshd and creates node users")


_clusters = []


def _install_cleanup(cluster):
    if cluster in _clusters:
        return
    _clusters.append(cluster)
    if len(_clusters) == 1:
        atexit.register(_stop_all)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def _stop_all():
    while _clusters:
        _clusters.pop().stop()


def _on_signal(signum, frame):
    _stop_all()
    sys.exit(128 + signum)

"""`make demo`: a local cluster of real sshd nodes, its control plane on the shared address."""

import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from firmware import patch
from firmware.management.commands.build_firmware import stamped_agent
from tests.harness import BASE_DIR, Cluster
from tests.harness.real_servers import RealServers

SERVICE_OCTET = 100  # the demo's Virtual Service address: PREFIX.100, port 80


class Command(BaseCommand):
    help = "Run Flotilla on a local cluster until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--nodes", type=int, default=4)
        parser.add_argument("--bare", action="store_true", help="standalone units: create the cluster by hand")

    def handle(self, nodes, bare, **options):
        password = secrets.token_urlsafe(12)
        trusted, sample = self._sample_update()
        cluster = Cluster(
            size=nodes,
            prefix="127.0.10",
            web=True,
            fresh=True,
            wui_env={"FLOTILLA_ADMIN_PASSWORD": password, "FIRMWARE_TRUSTED_KEYS": trusted},
        )
        servers = RealServers(cluster.prefix, root=cluster.root / "real-servers")
        self.stdout.write(f"Starting {nodes} units on {cluster.prefix}.1-{nodes} ...")
        cluster.start()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            servers.start()
            if not bare:
                self._create_cluster(cluster, servers)
            for node in cluster.nodes:
                self.stdout.write(f"Unit {node.n} local WUI: {node.wui_url}/")
            if bare:
                self.stdout.write("Create the cluster on a unit: HA and Clustering > Clustering > Cluster Control.")
            self.stdout.write(f"Shared WUI: {cluster.shared_url}/")
            self.stdout.write(f"Login: admin / {password}")
            self._how_to_trust(cluster)
            self.stdout.write(f"A software update to try (Update Software): {sample}")
            if not bare:
                service = f"http://{cluster.prefix}.{SERVICE_OCTET}/"
                self.stdout.write(
                    f"Try the Virtual Service (each answer names its real server and node): curl {service}"
                )
                self.stdout.write(f"A steady load to watch on Cluster Control: while curl -s {service}; do :; done")
            self.stdout.write("Press Ctrl-C to stop everything.")
            self.stdout.flush()
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("Stopping ...")
        finally:
            cluster.stop()
            servers.stop()

    def _how_to_trust(self, cluster):
        """Each unit made its own certificate on its first start: say how to trust them."""
        bundle = cluster.ca_file  # every unit's certificate as it is now
        self.stdout.write(
            "HTTPS with each unit's own self-signed certificate (plain HTTP on port 8080 redirects to it). "
            f"To trust them: curl --cacert {bundle} {cluster.shared_url}/health"
        )
        self.stdout.write(
            "In a browser, accept the warning once per address after comparing the SHA-256 fingerprint with "
            "Certificates & Security > WUI Certificate (or openssl x509 -noout -fingerprint -sha256 -in "
            f"{cluster.node(1).ca_file}); Create New Cluster makes the admin unit's again for the shared address, "
            "so read the file again after it."
        )

    def _sample_update(self):
        """A patch to version 1.1.0 signed by a key made for this demo, which its units trust."""
        key = patch.new_private_key()
        out = settings.VAR_DIR / "flotilla-1.1.0.patch"
        with tempfile.TemporaryDirectory() as stamp, tempfile.TemporaryDirectory() as payload:
            (Path(payload) / "bin").mkdir()
            shutil.copy(stamped_agent("1.1.0", Path(stamp)), Path(payload) / "bin" / "flotilla-agent")
            patch.build(out, Path(payload), "1.1.0", key)
        return patch.public_key_text(key), out

    def _create_cluster(self, cluster, servers):
        """Node 1 creates the cluster; nodes 2.. offer to join and are added and enabled."""
        joins = [f"{node.address}={node.agent('offer-join')['code']}" for node in cluster.nodes[1:]]
        admin = cluster.node(1)
        subprocess.run(
            [
                sys.executable,
                str(BASE_DIR / "manage.py"),
                "bootstrap_cluster",
                "--shared-address",
                cluster.shared_address,
                "--enable",
                "--virtual-service",
                "Demo web",
                f"{cluster.prefix}.{SERVICE_OCTET}",
                "80",
                *(f"--real-server={address}:{port}" for _, address, port in servers.servers),
                "--join",
                *joins,
            ],
            env=admin.env("shared"),
            check=True,
        )
        admin.restart()  # the admin unit "reboots" onto the shared address
        self.stdout.write("Cluster created; waiting for the nodes' 30 s warm-up so that they show Up ...")
        self.stdout.flush()
        self._wait_until_up(admin)

    def _wait_until_up(self, admin, timeout=90):
        """Ask the cluster (its one status function) until every member shows Up."""
        deadline = time.monotonic() + timeout
        argv = [sys.executable, str(BASE_DIR / "manage.py"), "cluster_status", "--json"]
        while time.monotonic() < deadline:
            done = subprocess.run(argv, env=admin.env("shared"), capture_output=True, text=True)
            statuses = json.loads(done.stdout or "{}") if done.returncode == 0 else {}
            if statuses and all(status in ("up", "admin") for status in statuses.values()):
                return
            time.sleep(1)
        self.stderr.write("Not every node came Up in time; the page shows why.")

"""`make demo`: a local 4-node cluster, a Celery worker and the shared WUI."""

import io
import os
import secrets
import signal
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from cluster import ssh
from cluster.models import Node
from cluster.tasks import refresh_facts
from nodes.harness import Cluster, wait_for_http


class Command(BaseCommand):
    help = "Run the product on a local cluster of real sshd nodes until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--nodes", type=int, default=4)
        parser.add_argument("--bare", action="store_true", help="four standalone units, no cluster yet")

    def handle(self, nodes, bare, **options):
        password = secrets.token_urlsafe(12)
        os.environ["FLOTILLA_ADMIN_PASSWORD"] = password
        call_command("createadmin", "--username", "admin", "--password-from-env", stdout=io.StringIO())
        env = {"FLOTILLA_VAR_DIR": str(settings.VAR_DIR), "FLOTILLA_ADMIN_PASSWORD": password}
        cluster = Cluster(
            size=nodes,
            prefix="127.0.10",
            web=True,
            fresh=True,
            wui_env=env,
            authorized_keys=[] if bare else [ssh.cluster_public_key()],
        )
        self.stdout.write(f"Starting {nodes} nodes on {cluster.prefix}.1-{nodes} ...")
        cluster.start()
        if not bare:
            self._register(cluster)
        python = sys.executable
        cluster.spawn(
            "worker", [python, "-m", "celery", "-A", "wui", "worker", "-P", "threads", "-c", "8", "-l", "warning"], env
        )
        cluster.spawn(
            "shared-wui",
            [
                python,
                "-m",
                "gunicorn",
                "wui.wsgi",
                "--bind",
                f"{cluster.shared_address}:8000",
                "--workers",
                "2",
                "--threads",
                "4",
            ],
            env,
        )
        wait_for_http(f"{cluster.shared_url}/health")
        for node in cluster.nodes:
            self.stdout.write(f"Node {node.n} local WUI: {node.wui_url}/  (ssh {node.user}@{node.address} -p 2222)")
        self.stdout.write(f"Shared WUI: {cluster.shared_url}/")
        self.stdout.write(f"Login: admin / {password}")
        self.stdout.write("Press Ctrl-C to stop everything.")
        self.stdout.flush()
        signal.signal(signal.SIGINT, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        try:
            while all(p.poll() is None for p in cluster.children):
                time.sleep(0.5)
            self.stderr.write("A control-plane process exited; see var/ logs. Stopping.")
        except KeyboardInterrupt:
            self.stdout.write("Stopping ...")
        finally:
            cluster.stop()

    def _register(self, cluster):
        for node in cluster.nodes:
            # The harness installed these machines, so their host keys are known first-hand.
            row, _ = Node.objects.update_or_create(
                number=node.n,
                defaults={"address": node.address, "ssh_user": node.user, "host_key": node.host_key_line},
            )
            refresh_facts.delay(row.pk)

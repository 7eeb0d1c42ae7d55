"""Create a cluster on this unit and join units to it without a browser (used by `make demo`).

It goes through the same functions as the WUI: Create New Cluster on this
unit, then Add New Node with each unit's one-time join code.
"""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cluster import ssh
from cluster.configuration import rules as config
from cluster.membership import rules as membership
from cluster.models import Cluster, JoinRequest, Node, RealServer, VirtualService
from nodes import agent
from nodes.local import own_address


class Command(BaseCommand):
    help = "Create a cluster on this unit (NODE_HOME) and add units given as ADDRESS=JOINCODE."

    def add_arguments(self, parser):
        parser.add_argument("--shared-address", required=True)
        parser.add_argument("--join", nargs="*", default=[], metavar="ADDRESS=CODE")
        parser.add_argument("--enable", action="store_true", help="enable every joined node")
        parser.add_argument("--virtual-service", nargs=3, metavar=("NAME", "ADDRESS", "PORT"))
        parser.add_argument(
            "--real-server", action="append", default=[], metavar="ADDRESS:PORT", help="a real server of the service"
        )

    def handle(self, shared_address, join, enable, virtual_service, real_server, **options):
        facts = agent.facts()
        try:
            shared = membership.check_shared_address(shared_address, {own_address(facts)})
            Cluster.objects.update_or_create(pk=1, defaults={"mode": Cluster.Mode.CLUSTERING})
            agent.authorize_key(ssh.cluster_public_key())
            membership.create_cluster(shared, facts, own_address(facts))
        except membership.Refused as exc:
            raise CommandError(str(exc)) from exc
        agent.set_membership("admin", shared)
        if virtual_service:
            name, address, port = virtual_service
            service = VirtualService.objects.create(name=name, address=address, port=int(port))
            for item in real_server:
                rs_address, _, rs_port = item.rpartition(":")
                RealServer.objects.create(virtual_service=service, address=rs_address, port=int(rs_port))
        for item in join:
            address, _, code = item.partition("=")
            request = JoinRequest.objects.create(address=address, code=code)
            node = membership.carry_out_join(request.pk)
            if node is None:
                raise CommandError(f"{address}: {JoinRequest.objects.get(pk=request.pk).message}")
            self.stdout.write(f"Node {node.number} ({address}) added")
        if enable:
            with config.change():
                Node.objects.filter(enabled=False).update(enabled=True, enabled_at=timezone.now())

from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "cluster"

    def ready(self):
        from auditlog.registry import auditlog

        from cluster.models import Cluster, Interface, Node, NodeInterface, RealServer, VirtualService

        # Every change to these rows is recorded with who, when, from where, before and after.
        auditlog.register(Cluster)
        auditlog.register(
            Node,
            exclude_fields=[
                "last_ok_at",
                "healthy_since",
                "failures",
                "last_error",
                "facts",
                "active_connections",
                "requests_per_second",
                "version",
            ],
        )
        auditlog.register(VirtualService)
        auditlog.register(RealServer)
        auditlog.register(Interface)
        auditlog.register(NodeInterface)

"""Each node's status as Cluster Control shows it, for scripts and `make demo`."""

import json

from django.core.management.base import BaseCommand

from cluster.membership.rules import node_rows


class Command(BaseCommand):
    help = "Print every node's status as Cluster Control shows it (--json for scripts)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON object: {node number: status}")

    def handle(self, **options):
        _, rows, _ = node_rows()
        statuses = {row["node"].number: row["status"].value for row in rows}
        if options["json"]:
            self.stdout.write(json.dumps(statuses))
            return
        for row in rows:
            self.stdout.write(f"Node {row['node'].number}  {row['node'].address}  {row['status'].label}")

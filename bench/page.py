"""Cluster Control server time with 64 member nodes, and its query count next to 4 nodes.

No SSH: the nodes are database rows in a throwaway PostgreSQL database, and the
page is fetched in-process with Django's test client, so the time measured is
the server's (middleware, queries, template) without any network in between.
"""

# ruff: noqa: E402 -- the project path and Django must be set up before the imports below

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))  # run as a script: make the project importable
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wui.settings")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, setup_test_environment, teardown_test_environment
from django.urls import reverse
from django.utils import timezone

from cluster.models import Cluster, JoinRequest, Node, VirtualService

DB_NAME = "flotilla_bench_page"  # not test_flotilla: a test suite may be running at the same time
GETS = 200
RESULT = BASE_DIR / "bench" / "results" / "page.json"


def populate(count):
    """Replace the member rows with `count` nodes whose statuses cycle through every kind."""
    Node.objects.all().delete()
    now = timezone.now()
    healthy = {"enabled": True, "accepting": True, "last_ok_at": now}
    kinds = [
        {**healthy, "healthy_since": now - timedelta(minutes=5)},  # Up
        {**healthy, "healthy_since": now - timedelta(seconds=5)},  # Starting (warm-up)
        {"enabled": True, "failures": 2, "last_error": "unreachable"},  # Down
        {"enabled": False, "disabled_at": now},  # Draining
        {"enabled": False, "disabled_at": now - timedelta(hours=1)},  # Disabled
    ]
    rows = [
        Node(
            number=n,
            address=f"10.77.0.{n}",
            ssh_user=f"flotilla-{n}",
            host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG7b0bWQ0e8m5n3S1c2Vb6yq9y0J8Zb2H5p1l0zX3xQm",
            version="1.0.0",
            applied_generation=1,
            **({"is_admin": True, **kinds[0]} if n == 1 else kinds[n % len(kinds)]),
        )
        for n in range(1, count + 1)
    ]
    Node.objects.bulk_create(rows)


def setup_cluster():
    Cluster.objects.update_or_create(pk=1, defaults={"mode": Cluster.Mode.CLUSTERING, "shared_address": "10.77.0.90"})
    VirtualService.objects.create(name="Bench web", address="10.77.0.90", port=80)
    # The live fragment also lists recent Add New Node requests: show a couple.
    JoinRequest.objects.create(address="10.77.0.200", state=JoinRequest.State.DONE)
    JoinRequest.objects.create(address="10.77.0.201", state=JoinRequest.State.REFUSED, message="join code refused")
    user = get_user_model().objects.create_superuser("bench", password=None)
    client = Client()
    client.force_login(user)
    return client


def get(client, fragment=False):
    response = client.get(reverse("cluster_control"), headers={"HX-Request": "true"} if fragment else {})
    if response.status_code != 200:
        raise RuntimeError(f"Cluster Control answered {response.status_code}")
    return response


def count_queries(client, fragment=False):
    get(client, fragment)  # first render fills caches (templates, content types): not what we count
    with CaptureQueriesContext(connection) as queries:
        get(client, fragment)
    return len(queries)


def time_page(client, nodes):
    for _ in range(10):  # warm up: template loader cache, connection
        get(client)
    samples = []
    for _ in range(GETS):
        started = time.perf_counter()
        response = get(client)
        samples.append((time.perf_counter() - started) * 1000)
    rendered = response.content.decode().count("<tr data-node=")
    if rendered != nodes:
        raise RuntimeError(f"the page shows {rendered} nodes, not {nodes}")
    return samples


def measure():
    client = setup_cluster()
    populate(64)
    samples = time_page(client, 64)
    result = {"nodes": 64, "p95_ms": round(statistics.quantiles(samples, n=100)[94], 2)}
    result["p50_ms"] = round(statistics.median(samples), 2)
    result["queries"] = count_queries(client)
    result["fragment_queries"] = count_queries(client, fragment=True)
    populate(4)
    result["queries_with_4_nodes"] = count_queries(client)
    result["fragment_queries_with_4_nodes"] = count_queries(client, fragment=True)
    return result


def main():
    setup_test_environment()
    connection.settings_dict["TEST"]["NAME"] = DB_NAME
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        result = measure()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

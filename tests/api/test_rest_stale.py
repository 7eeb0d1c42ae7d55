"""The stale-write check is made under the lock the write itself takes: no change can slip in between."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from cluster.configuration import rules as config
from cluster.models import Cluster
from tests.helpers import make_cluster, wait_until
from wui.api import keys


def waiting_for_a_lock():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_a_write_waiting_behind_another_change_is_refused_once_that_change_commits(admin_user):
    make_cluster()
    raw = keys.create(admin_user, "stale", read_only=False)[1]
    read = config.latest_number()
    holding, release, answers = threading.Event(), threading.Event(), []

    def other_operator():
        try:
            with config.change():
                Cluster.objects.filter(pk=1).update(drain_time=55)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def script():
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
            answers.append(client.patch("/api/v1/cluster", {"virtual_id": 9, "generation": read}, format="json"))
        finally:
            connection.close()

    first = threading.Thread(target=other_operator)
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=script)
    second.start()
    # The script's write waits for the cluster row's lock, having read nothing yet.
    wait_until(waiting_for_a_lock, 10, message=lambda: "the API write never waited for the lock")
    release.set()
    first.join(10)
    second.join(10)

    (answer,) = answers
    assert answer.status_code == 409
    assert answer.json()["generation"] == read + 1 == config.latest_number()
    cluster = Cluster.get()
    assert cluster.drain_time == 55 and cluster.virtual_id != 9

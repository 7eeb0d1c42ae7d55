"""A restore is all or nothing: a failure inside it, or its process killed half way, leaves the previous one."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection, transaction

from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.models import Cluster
from tests.harness import BASE_DIR
from tests.helpers import download, make_cluster, repack, restored_events, state, text_of, upload

pytestmark = pytest.mark.django_db(transaction=True)


def changed_since(client):
    """A backup that differs from what is in force now in every part, the last Virtual Service a duplicate."""
    make_cluster()
    data = download(client)
    with config.change():
        Cluster.objects.filter(pk=1).update(drain_time=77)

    def edit(content):
        content["cluster"]["virtual_id"] = 99
        content["nodes"][1]["enabled"] = False
        content["interfaces"][0]["mtu"] = 4000
        content["virtual_services"].append(dict(content["virtual_services"][0]))

    return repack(data, content_change=edit)


def test_a_failure_inside_the_restore_leaves_the_previous_configuration(admin_client):
    data = changed_since(admin_client)
    before = state()

    response = upload(admin_client, data)

    assert response.status_code == 400
    assert "The backup could not be applied" in text_of(response)
    assert state() == before  # cluster parameters, nodes and interfaces came before the failure: all undone
    assert restored_events() == 0


RESTORE = """
import sys, django
django.setup()
from cluster.backup import rules as backup
backup.restore(backup.read(sys.argv[1]))
"""


def test_a_restore_killed_half_way_leaves_the_previous_configuration(admin_client, tmp_path, settings):
    make_cluster()
    data = download(admin_client)
    with config.change():
        Cluster.objects.filter(pk=1).update(drain_time=77)
    path = tmp_path / "backup.tar.gz"
    path.write_bytes(data)
    before = state()
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + connection.settings_dict["NAME"]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "wui.settings",
        "PGAPPNAME": "backup-kill",
        "BACKUP_KEY_FILE": str(settings.BACKUP_KEY_FILE),  # the key that made the backup
    }
    with transaction.atomic():
        # Holding this lock stops the restore at its very last step, the new generation: everything else is
        # written (uncommitted) when the process is killed.
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE cluster_configgeneration IN EXCLUSIVE MODE")
        proc = subprocess.Popen([sys.executable, "-c", RESTORE, str(path)], cwd=BASE_DIR, env=env)
        try:
            _wait_for(lambda: _waiting_backend("Lock"), proc)
            assert _uncommitted_writes_held()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    _wait_for(lambda: not _waiting_backend(None), None)
    assert state() == before
    assert restored_events() == 0


def _waiting_backend(wait_type):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees the statistics of its start
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'backup-kill' "
            "AND (%s::text IS NULL OR wait_event_type = %s)",
            [wait_type, wait_type],
        )
        return cursor.fetchone()[0]


def _uncommitted_writes_held():
    """The restore has written rows (uncommitted) when it is killed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE a.application_name = 'backup-kill' AND l.mode = 'RowExclusiveLock'"
        )
        return cursor.fetchone()[0] > 0


def _wait_for(predicate, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the restore process ended by itself with {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_refused_file_bytes_are_not_kept(admin_client):
    make_cluster()
    upload(admin_client, b"not a backup")
    incoming = backup.backup_dir() / "incoming"
    assert not incoming.exists() or not list(incoming.iterdir())

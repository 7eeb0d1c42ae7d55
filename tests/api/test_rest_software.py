"""Software updates, the rolling reboot, backup and restore over the REST API (no node is reached)."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cluster import clock
from cluster.configuration import rules as config
from cluster.models import Cluster, Node, Rollout, RolloutNode
from firmware import patch
from tests.helpers import build, make_cluster, make_standalone, wipe

pytestmark = pytest.mark.usefixtures("cluster")


@pytest.fixture
def key(settings, tmp_path):
    private = patch.new_private_key()
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(private)]
    settings.VAR_DIR = tmp_path / "var"
    return private


def all_serving():
    """Every node answers, is in sync and past its warm-up: what an update's pre-flight asks."""
    long_ago = clock.now() - timedelta(minutes=5)
    Node.objects.update(
        last_ok_at=clock.now(),
        checked_at=clock.now(),
        healthy_since=long_ago,
        accepting=True,
        applied_generation=config.latest_number(),
    )
    Cluster.objects.update(services_since=long_ago)


def test_upload_install_rolling_reboot_and_cancel(api, key, tmp_path):
    path = build(tmp_path, key)
    with path.open("rb") as file:
        uploaded = api.post("/api/v1/software", {"patch": file}, format="multipart")
    assert uploaded.status_code == 200, uploaded.json()
    kept = uploaded.json()
    assert kept["version"] == "1.1.0" and kept["size"] == path.stat().st_size
    assert api.get("/api/v1/software").json()["kept"] == [kept]

    garbage = api.post("/api/v1/software", {"patch": SimpleUploadedFile("x.patch", b"nope")}, format="multipart")
    assert garbage.status_code == 400 and garbage.json()["detail"].startswith("The software update was refused")

    refused = api.post("/api/v1/software/install", {"sha256": kept["sha256"]}, format="json")
    assert refused.status_code == 409 and "is Down" in refused.json()["detail"]

    all_serving()
    started = api.post("/api/v1/software/install", {"sha256": kept["sha256"]}, format="json")
    assert started.status_code == 202, started.json()
    op = started.json()
    assert op["kind"] == "update" and op["state"] == "running" and op["progress"] == {"done": 0, "total": 3}
    busy = api.post("/api/v1/software/install", {"sha256": kept["sha256"]}, format="json")
    assert busy.status_code == 409 and "another software update (version 1.1.0) is in progress" in busy.json()["detail"]

    # What the worker does once every node verified and installed it.
    Rollout.objects.update(state=Rollout.State.INSTALLED)
    RolloutNode.objects.update(state=RolloutNode.State.INSTALLED)
    assert api.get(op["url"]).json()["state"] == "succeeded"

    assert api.post("/api/v1/software/resume").json() == {"detail": "there is no halted rolling reboot to resume"}
    rolling = api.post("/api/v1/software/rolling-reboot")
    assert rolling.status_code == 202, rolling.json()
    assert rolling.json()["kind"] == "rolling-reboot" and rolling.json()["state"] == "running"
    assert api.get("/api/v1/software").json()["rollout"]["state"] == "rolling"

    cancelled = api.post("/api/v1/software/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "failed"
    assert Rollout.objects.get().state == Rollout.State.INSTALLED


def test_an_upload_over_the_limit_is_refused_before_it_is_read(api, key, settings):
    settings.FIRMWARE_MAX_BYTES = 1000
    big = SimpleUploadedFile("big.patch", b"x" * 200_000)
    response = api.post("/api/v1/software", {"patch": big}, format="multipart")
    assert response.status_code == 413 and "too large" in response.json()["detail"]


def test_backup_downloads_and_restore_answers_200_when_nothing_changes_and_202_when_nodes_reboot(
    api, settings, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    response = api.get("/api/v1/backup")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="flotilla-backup-')
    data = response.content

    same = api.post("/api/v1/restore", {"backup": SimpleUploadedFile("b.tar.gz", data)}, format="multipart")
    assert same.status_code == 200, same.json()
    assert same.json()["changed"] is False

    api.patch("/api/v1/cluster", {"drain_time": 99}, format="json")
    restored = api.post("/api/v1/restore", {"backup": SimpleUploadedFile("b.tar.gz", data)}, format="multipart")
    assert restored.status_code == 202, restored.json()
    assert restored.json()["kind"] == "restore" and restored.json()["state"] == "running"
    assert Cluster.get().drain_time != 99

    bad = api.post("/api/v1/restore", {"backup": SimpleUploadedFile("b.tar.gz", b"junk")}, format="multipart")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("The backup was refused. This is not a backup")
    assert api.post("/api/v1/restore", {}, format="multipart").status_code == 400

    protected = api.post("/api/v1/backup", {"passphrase": "short"}, format="json")
    assert protected.status_code == 400 and protected.json()["detail"].startswith("No backup was made.")


def test_a_backup_with_settings_a_cluster_cannot_take_is_refused_with_them_listed_until_convert(
    api, settings, tmp_path
):
    settings.VAR_DIR = tmp_path / "var"
    wipe()
    make_standalone()
    data = api.get("/api/v1/backup").content
    wipe()
    make_cluster()
    before = config.latest_number()

    refused = api.post("/api/v1/restore", {"backup": SimpleUploadedFile("b.tar.gz", data)}, format="multipart")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail.startswith("The backup was refused. It has ") and "Layer" in detail
    assert config.latest_number() == before

    converted = api.post(
        "/api/v1/restore", {"backup": SimpleUploadedFile("b.tar.gz", data), "convert": "1"}, format="multipart"
    )
    assert converted.status_code in (200, 202), converted.json()
    assert config.latest_number() == before + 1

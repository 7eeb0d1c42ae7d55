"""Restore: a round trip gives back the same configuration byte for byte; users; automatic backups."""

import json

from django.contrib.auth import get_user_model
from django.urls import reverse

from cluster import tasks
from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.models import ConfigGeneration, Event, Interface, Node, NodeInterface, RealServer, Rollout, VirtualService
from tests.helpers import download, host_key, rendered, restored_events, text_of, unpack, upload


def change_everything():
    """Every kind of setting a backup holds, changed."""
    cluster = config.Cluster.get()
    cluster.virtual_id, cluster.drain_time, cluster.shared_address = 42, 300, "10.0.0.91"
    cluster.save()
    one, two = Node.objects.get(number=1), Node.objects.get(number=2)
    Node.objects.filter(pk=two.pk).update(address="10.0.0.200")
    Node.objects.filter(pk=one.pk).update(address="10.0.0.2", host_key=host_key(99), ssh_user="someone")
    Node.objects.filter(pk=two.pk).update(address="10.0.0.1", enabled=False)
    Node.objects.filter(number=3).delete()
    Node.objects.create(number=4, address="10.0.0.4", ssh_user="flotilla-4", host_key=host_key(4), enabled=True)
    eth0 = Interface.objects.get(name="eth0")
    eth0.mtu, eth0.link_mode, eth0.additional_addresses, eth0.use_for_geo = 9000, "1000-full", ["10.0.0.201/24"], False
    eth0.save()
    NodeInterface.objects.filter(interface=eth0, node=one).update(address="10.0.0.77/24", use_for_default_gateway=False)
    Interface.objects.filter(name="eth1").delete()
    VirtualService.objects.filter(name="api").delete()
    web = VirtualService.objects.get(name="web")
    web.scheduling, web.check_url = "wlc", "/health"
    web.save()
    RealServer.objects.filter(virtual_service=web, port=8080).update(weight=7)
    RealServer.objects.create(virtual_service=web, address="10.0.0.13", port=9090)
    VirtualService.objects.create(name="new", address="10.0.0.90", port=8443)
    with config.change():
        pass  # a generation of what the database now says


def test_round_trip_gives_back_the_rendered_configuration_byte_for_byte(
    admin_client, cluster_rows, django_capture_on_commit_callbacks
):
    before, everything = rendered(), backup.snapshot()
    data = download(admin_client)
    change_everything()
    assert rendered() != before
    generations = ConfigGeneration.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, data)

    assert response.status_code == 302, text_of(response)[:3000]
    assert rendered() == before
    assert backup.snapshot() == everything  # host keys, SSH users, gateways, facts too
    newest = ConfigGeneration.objects.order_by("-number").first()
    assert ConfigGeneration.objects.count() == generations + 1
    assert config.canonical(newest.document) == before
    assert restored_events() == 1
    assert Event.objects.filter(message="Restore: the nodes reboot one at a time, the admin node last").count() == 1
    reboots = Rollout.objects.get()
    assert (reboots.kind, reboots.state, reboots.nodes.count()) == ("restore", "rolling", Node.objects.count())
    page = text_of(admin_client.get(reverse("backup_restore")))
    assert f"now configuration generation {newest.number}" in page
    assert "The nodes are rebooted one at a time" in page


def test_the_download_is_named_and_logged(admin_client, cluster_rows):
    response = admin_client.post(reverse("backup_restore"), {"action": "backup"})
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"].startswith('attachment; filename="flotilla-backup-')
    assert Event.objects.filter(message__startswith="Backup downloaded by admin").exists()


def test_users_are_in_the_file_only_when_the_operator_asks(admin_client, cluster_rows, admin_user):
    plain = json.loads(unpack(download(admin_client))["content.json"])
    assert "users" not in plain
    assert admin_user.password not in unpack(download(admin_client)).get("content.json").decode()
    content = json.loads(unpack(download(admin_client, include_users=True))["content.json"])
    assert [u["username"] for u in content["users"]] == ["admin"]
    assert content["users"][0]["password"] == admin_user.password


def test_users_are_restored_and_the_operator_stays_logged_in(admin_client, cluster_rows, admin_user):
    get_user_model().objects.create_user("operator2", password="another-long-password")
    data = download(admin_client, include_users=True)
    old_hash = get_user_model().objects.get(username="admin").password
    get_user_model().objects.filter(username="operator2").delete()
    admin_user.set_password("a-different-password")
    admin_user.save()
    admin_client.force_login(admin_user)

    response = upload(admin_client, data)

    assert response.status_code == 302, text_of(response)[:3000]
    assert get_user_model().objects.get(username="admin").password == old_hash
    assert get_user_model().objects.filter(username="operator2").exists()
    assert admin_client.get(reverse("backup_restore")).status_code == 200  # still logged in


def test_the_same_configuration_restored_makes_no_new_generation(admin_client, cluster_rows):
    data = download(admin_client)
    generations = ConfigGeneration.objects.count()
    response = upload(admin_client, data)
    assert response.status_code == 302
    assert ConfigGeneration.objects.count() == generations
    page = admin_client.get(response["Location"]).content.decode()
    assert "nothing changed, the configuration in force already matches it (no node is rebooted)" in page
    assert "now configuration generation" not in page
    assert not Rollout.objects.exists()  # no node is rebooted for a restore that changed nothing
    line = Event.objects.filter(message__startswith="Configuration restored").latest("pk").message
    assert "changed nothing: it matches what is in force" in line


def test_automatic_backups_are_kept_to_the_configured_count_and_listed(admin_client, cluster_rows, settings):
    settings.BACKUP_KEEP = 2
    from datetime import UTC, datetime

    for day in (1, 2, 3):
        backup.save_scheduled(now=datetime(2026, 1, day, 3, 0, tzinfo=UTC))
    tasks.scheduled_backup()  # what Celery beat runs, here in the test's own thread
    names = [b["name"] for b in backup.saved_backups()]
    assert len(names) == 2 and names[1] == "flotilla-backup-20260103T030000Z.tar.gz"  # the oldest two went
    assert all((backup.backup_dir() / n).stat().st_mode & 0o777 == 0o600 for n in names)

    page = text_of(admin_client.get(reverse("backup_restore")))
    assert names[0] in page and names[1] in page
    response = admin_client.get(reverse("saved_backup", args=[names[1]]))
    saved = b"".join(response.streaming_content)
    path = backup.backup_dir() / "check.tar.gz"
    path.write_bytes(saved)
    assert backup.read(path).origin == "cluster"
    assert admin_client.get(reverse("saved_backup", args=["secret_key"])).status_code == 404

"""Nothing forged: a backup restores only when it was made by this cluster (its key) or with the passphrase."""

import io
import json
import stat
import tarfile
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from cluster.backup import rules as backup
from cluster.configuration import rules as config
from cluster.models import Cluster, Node
from tests.helpers import (
    choose,
    download,
    host_key,
    make_cluster,
    make_standalone,
    rendered,
    repack,
    restored_events,
    state,
    text_of,
    unpack,
    upload,
    wipe,
)

PASSPHRASE = "correct horse battery staple"
FORGED_PASSWORD = "forged-password-1234"


@pytest.fixture
def good(admin_client, cluster_rows):
    return download(admin_client)


def refused(client, data, message, **fields):
    before = state()
    users = sorted(get_user_model().objects.values_list("username", "password", "is_superuser"))
    response = upload(client, data, **fields)
    assert response.status_code == 400, text_of(response)[:2000]
    assert message in text_of(response)
    assert "Nothing was changed" in text_of(response)
    assert state() == before
    assert sorted(get_user_model().objects.values_list("username", "password", "is_superuser")) == users
    assert restored_events() == 0
    return response


def old_style_checksum(header, body):
    """What format 1 put in the header: a sha256 that anyone can compute again after an edit."""
    import hashlib

    fields = {k: v for k, v in header.items() if k != "sha256"}
    return hashlib.sha256(config.canonical(fields) + b"\n" + body).hexdigest()


def forged(good, header_changes=None, content_change=None):
    """The backup edited by someone without the cluster's key: its authentication code is left as it was."""
    return repack(good, header_changes, content_change, sign=False)


# Edited backups


def add_superuser(content):
    user = get_user_model()(username="intruder", is_superuser=True, is_staff=True, is_active=True)
    user.set_password(FORGED_PASSWORD)
    content["users"] = [{f: getattr(user, f) for f in backup.USER_FIELDS}]


def test_a_backup_edited_to_add_a_superuser_is_refused_and_that_user_cannot_log_in(admin_client, good):
    data = forged(good, {"includes_users": True}, add_superuser)

    refused(admin_client, data, "Authentication failed: the backup was edited or damaged after it was made")

    assert not get_user_model().objects.filter(username="intruder").exists()
    response = Client().post(reverse("login"), {"username": "intruder", "password": FORGED_PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in response.wsgi_request.session


def test_a_backup_edited_to_pin_an_impostors_host_key_is_refused(admin_client, good):
    def swap(content):
        content["nodes"][1]["host_key"] = host_key(66)

    refused(admin_client, forged(good, content_change=swap), "Authentication failed")
    assert Node.objects.get(number=2).host_key == host_key(2)


def test_a_backup_with_its_origin_flipped_to_standalone_is_refused(admin_client, good):
    def new_id(content):
        content["cluster"]["virtual_id"] = 200

    refused(admin_client, forged(good, {"origin": "standalone"}, new_id), "Authentication failed")
    assert Cluster.get().virtual_id != 200


def test_a_format_1_checksum_made_right_again_authenticates_nothing(admin_client, good):
    members = unpack(good)
    header = json.loads(members["header.json"])
    content = json.loads(members["content.json"])
    add_superuser(content)
    body = config.canonical(content)
    header.update(includes_users=True, sha256="")
    header["sha256"] = old_style_checksum(header, body)
    data = backup.archive({"header.json": json.dumps(header).encode(), "content.json": body})

    refused(admin_client, data, "Authentication failed")


def test_a_backup_with_its_authentication_removed_is_refused(admin_client, good):
    members = unpack(good)
    header = json.loads(members["header.json"])
    del header["hmac_sha256"]
    data = backup.archive({"header.json": json.dumps(header).encode(), "content.json": members["content.json"]})
    refused(admin_client, data, "header.json has no valid hmac_sha256")


def test_a_format_1_backup_is_refused_with_the_reason(admin_client, good):
    members = unpack(good)
    header = json.loads(members["header.json"])
    for name in ("protection", "key_id", "hmac_sha256"):
        del header[name]
    header["format_version"] = 1
    header["sha256"] = old_style_checksum(header, members["content.json"])
    data = backup.archive({"header.json": json.dumps(header).encode(), "content.json": members["content.json"]})

    refused(admin_client, data, "This backup is of format version 1, made by an earlier software version")


# Another cluster's backup


@pytest.fixture
def other_cluster(settings, var_dir):
    """Switches to another cluster's key (while it takes a backup), then back to this one's."""

    class Other:
        def __enter__(self):
            self.ours, settings.BACKUP_KEY_FILE = settings.BACKUP_KEY_FILE, var_dir / "other_cluster_key"

        def __exit__(self, *exc):
            settings.BACKUP_KEY_FILE = self.ours

    backup.cluster_key()  # this cluster has a key before the other one makes its backup
    return Other()


def backup_of_another_cluster(client, other_cluster, passphrase=None):
    """The other cluster's configuration differs from this one's in its Virtual ID and drain time."""
    cluster = Cluster.get()
    ours = cluster.virtual_id, cluster.drain_time
    Cluster.objects.filter(pk=1).update(virtual_id=123, drain_time=45)
    with other_cluster:
        data = download(client, passphrase=passphrase)
    Cluster.objects.filter(pk=1).update(virtual_id=ours[0], drain_time=ours[1])
    return data


def test_a_backup_of_another_cluster_without_a_passphrase_is_refused(admin_client, cluster_rows, other_cluster):
    data = backup_of_another_cluster(admin_client, other_cluster)
    refused(admin_client, data, "The backup was made by another cluster or unit")
    refused(admin_client, data, "The backup was made by another cluster or unit", passphrase=PASSPHRASE)


def test_a_backup_of_another_cluster_restores_with_its_passphrase_only(
    admin_client, cluster_rows, other_cluster, django_capture_on_commit_callbacks
):
    data = backup_of_another_cluster(admin_client, other_cluster, passphrase=PASSPHRASE)

    refused(admin_client, data, "This backup is protected with a passphrase: enter its passphrase")
    refused(admin_client, data, "Wrong passphrase, or the backup was edited", passphrase=PASSPHRASE + "!")
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, data, passphrase=PASSPHRASE)

    assert response.status_code == 302, text_of(response)[:3000]
    assert (Cluster.get().virtual_id, Cluster.get().drain_time) == (123, 45)
    assert restored_events() == 1


def test_a_passphrase_backup_edited_is_refused_even_with_the_passphrase(admin_client, cluster_rows):
    data = download(admin_client, passphrase=PASSPHRASE)
    members = unpack(data)
    header = json.loads(members["header.json"])
    header["origin"] = "standalone"
    edited = backup.archive({"header.json": json.dumps(header).encode(), "content.enc": members["content.enc"]})
    refused(admin_client, edited, "Wrong passphrase, or the backup was edited", passphrase=PASSPHRASE)
    damaged = bytearray(members["content.enc"])
    damaged[10] ^= 1
    edited = backup.archive({"header.json": members["header.json"], "content.enc": bytes(damaged)})
    refused(admin_client, edited, "Wrong passphrase, or the backup was edited", passphrase=PASSPHRASE)


def test_a_passphrase_backup_is_a_tar_gz_whose_content_is_encrypted(admin_client, cluster_rows, admin_user):
    data = download(admin_client, include_users=True, passphrase=PASSPHRASE)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.getnames() == ["header.json", "content.enc"]
    members = unpack(data)
    header = json.loads(members["header.json"])
    assert header["protection"] == "passphrase" and header["format_version"] == 2
    assert header["kdf"]["name"] == "scrypt" and header["kdf"]["n"] >= 2**14 and header["kdf"]["salt"]
    assert header["cipher"]["name"] == "AES-256-GCM" and header["cipher"]["nonce"]
    assert b"ssh-ed25519" not in members["content.enc"] and admin_user.password.encode() not in members["content.enc"]
    assert PASSPHRASE.encode() not in data


def test_a_passphrase_header_cannot_make_the_restore_spend_memory_and_time(admin_client, cluster_rows):
    data = download(admin_client, passphrase=PASSPHRASE)
    members = unpack(data)
    header = json.loads(members["header.json"])
    header["kdf"]["n"] = 2**24  # scrypt would take 2 GiB and seconds
    crafted = backup.archive({"header.json": json.dumps(header).encode(), "content.enc": members["content.enc"]})
    start = time.process_time()
    refused(admin_client, crafted, "The backup asks for a key derivation this software does not run", passphrase="x")
    assert time.process_time() - start < 0.5


def test_a_standalone_passphrase_backup_converted_into_a_cluster_needs_the_passphrase_once(admin_client, db):
    wipe()
    make_standalone()
    data = download(admin_client, passphrase=PASSPHRASE)
    wipe()
    make_cluster()

    shown = upload(admin_client, data, passphrase=PASSPHRASE)
    assert shown.status_code == 200 and "Restore with these settings converted" in text_of(shown)
    response = choose(admin_client, shown, "convert")

    assert response.status_code == 302, text_of(response)[:3000]
    assert restored_events() == 1
    assert not list((backup.backup_dir() / "pending").iterdir())


@pytest.mark.parametrize(
    ("passphrase", "again", "message"),
    [
        ("short", "short", "A passphrase has at least 12 characters"),
        (PASSPHRASE, PASSPHRASE + "x", "The two passphrases differ"),
    ],
)
def test_a_passphrase_that_would_not_do_makes_no_backup(admin_client, cluster_rows, passphrase, again, message):
    response = admin_client.post(
        reverse("backup_restore"), {"action": "backup", "passphrase": passphrase, "passphrase_again": again}
    )
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    assert f"No backup was made. {message}" in text_of(response)


# The cluster's key


def test_the_key_is_made_on_first_use_readable_by_this_user_only_and_never_in_a_backup(
    admin_client, cluster_rows, settings
):
    assert not settings.BACKUP_KEY_FILE.exists()
    data = download(admin_client, include_users=True)
    key_text = settings.BACKUP_KEY_FILE.read_text().strip()
    assert stat.S_IMODE(settings.BACKUP_KEY_FILE.stat().st_mode) == 0o600
    assert key_text.encode() not in data and key_text.encode() not in b"".join(unpack(data).values())
    again = download(admin_client)
    assert json.loads(unpack(again)["header.json"])["key_id"] == json.loads(unpack(data)["header.json"])["key_id"]
    assert settings.BACKUP_KEY_FILE.read_text().strip() == key_text


def test_a_damaged_key_file_makes_no_backup_and_says_so(admin_client, cluster_rows, settings):
    settings.BACKUP_KEY_FILE.write_text("not a key\n")
    response = admin_client.post(reverse("backup_restore"), {"action": "backup"})
    assert response.status_code == 400
    assert "The backup key file" in text_of(response) and "is damaged" in text_of(response)


def test_automatic_backups_are_authenticated_with_the_cluster_key(cluster_rows, settings, other_cluster, tmp_path):
    path = backup.save_scheduled()
    header = json.loads(unpack(path.read_bytes())["header.json"])
    assert header["protection"] == "cluster-key"
    assert backup.read(path).origin == "cluster"
    with other_cluster, pytest.raises(backup.BackupError, match="made by another cluster or unit"):
        backup.read(path)


def test_a_backup_restores_after_a_round_trip_through_tar(admin_client, cluster_rows, tmp_path):
    """What `tar xzf` shows is the backup; put back together unchanged, it still restores."""
    data = download(admin_client)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    again = backup.archive({n: (tmp_path / "x" / n).read_bytes() for n in ("header.json", "content.json")})
    before = rendered()
    assert upload(admin_client, again).status_code == 302
    assert rendered() == before

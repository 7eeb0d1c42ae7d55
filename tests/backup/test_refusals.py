"""Every bad file is refused with a clear message, and nothing changes."""

import gzip
import io
import json
import tarfile

import pytest

from cluster.backup import rules as backup
from tests.helpers import download, repack, restored_events, state, text_of, unpack, upload


@pytest.fixture
def good(admin_client, cluster_rows):
    return download(admin_client)


def refused(client, data, message, status=400):
    before = state()
    response = upload(client, data)
    assert response.status_code == status, text_of(response)[:2000]
    assert message in text_of(response)
    assert "Nothing was changed" in text_of(response)
    assert state() == before
    assert restored_events() == 0
    return response


def tar_gz(members):
    """A gzip tar of (TarInfo settings, bytes) pairs, for members a backup would never hold."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "/etc/passwd"
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


def test_a_truncated_file_is_refused(admin_client, good):
    refused(admin_client, good[: len(good) // 2], "The backup is truncated or damaged")


def test_a_file_with_its_last_bytes_missing_is_refused(admin_client, good):
    refused(admin_client, good[:-4], "The backup is truncated or damaged")


def test_a_byte_changed_in_the_compressed_file_is_refused(admin_client, good):
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0xFF
    refused(admin_client, bytes(damaged), "The backup is truncated or damaged")


def test_an_edited_setting_is_refused_by_the_authentication(admin_client, good):
    def edit(content):
        content["cluster"]["virtual_id"] = 200

    refused(admin_client, repack(good, content_change=edit, sign=False), "Authentication failed: the backup was edited")


def test_a_wrong_authentication_code_is_refused(admin_client, good):
    refused(admin_client, repack(good, {"hmac_sha256": "0" * 64}, sign=False), "Authentication failed")


def test_an_unknown_format_version_is_refused(admin_client, good):
    refused(admin_client, repack(good, {"format_version": 3}), "Unknown backup format version 3")


def test_a_backup_of_a_newer_product_version_is_refused(admin_client, good):
    refused(admin_client, repack(good, {"product_version": "9.0.0"}), "made by product version 9.0.0, newer")


def test_a_text_file_is_not_a_backup(admin_client, cluster_rows):
    refused(admin_client, b"hello, this is not a backup\n", "This is not a backup file")


def test_an_empty_file_is_not_a_backup(admin_client, cluster_rows):
    refused(admin_client, b"", "This is not a backup file")


def test_compressed_text_is_not_a_backup(admin_client, cluster_rows):
    refused(admin_client, gzip.compress(b"just some text" * 100), "compressed but not a tar archive")


def test_an_archive_of_other_files_is_not_a_backup(admin_client, cluster_rows):
    data = tar_gz([("manifest.json", b"{}", tarfile.REGTYPE)])
    refused(admin_client, data, "a backup holds only header.json and content.json")


def test_an_archive_without_a_header_is_not_a_backup(admin_client, good):
    data = tar_gz([("content.json", b"{}", tarfile.REGTYPE)])
    refused(admin_client, data, "This is not a backup file: it has no header.json")


def test_a_backup_of_another_kind_of_file_is_refused(admin_client, good):
    refused(admin_client, repack(good, {"format": "something-else"}), "This is not a Flotilla backup file")


@pytest.mark.parametrize(
    "name,kind",
    [
        ("../header.json", tarfile.REGTYPE),
        ("/etc/cron.d/header.json", tarfile.REGTYPE),
        ("backup/../../content.json", tarfile.REGTYPE),
        ("header.json", tarfile.SYMTYPE),
        ("content.json", tarfile.LNKTYPE),
    ],
)
def test_an_archive_with_paths_outside_itself_is_refused(admin_client, cluster_rows, name, kind):
    data = tar_gz([(name, b"{}", kind)])
    refused(admin_client, data, "a path outside itself")


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(admin_client, good, settings, var_dir):
    settings.BACKUP_MAX_BYTES = 1024
    response = refused(admin_client, good + b"\0" * 200_000, "over the 1024 bytes limit for a backup", status=413)
    assert "The file is too large" in text_of(response)
    assert not list((var_dir / "backups").glob("**/*.tar.gz")) if (var_dir / "backups").exists() else True


def test_a_file_just_over_the_limit_is_refused_by_its_size(good, settings, tmp_path):
    path = tmp_path / "big.tar.gz"
    path.write_bytes(good)
    with pytest.raises(backup.BackupError, match="over the .* limit for a backup"):
        backup.read(path, max_bytes=len(good) - 1)


def test_damaged_settings_in_an_authentic_backup_are_refused(admin_client, good):
    def edit(content):
        content["virtual_services"][0]["port"] = 70000

    refused(admin_client, repack(good, content_change=edit), "The settings in the backup are not valid")


def test_a_malformed_host_key_is_refused(admin_client, good):
    def edit(content):
        content["nodes"][0]["host_key"] = "not-a-key"

    refused(admin_client, repack(good, content_change=edit), "The settings in the backup are not valid")


def test_a_header_that_is_not_json_is_refused(admin_client, good):
    members = {"header.json": b"\xff\xfe not json", "content.json": b"{}"}
    refused(admin_client, backup.archive(members), "header.json is not UTF-8 text")
    members = {"header.json": b"{not json", "content.json": b"{}"}
    refused(admin_client, backup.archive(members), "header.json is not valid JSON (Expecting property name")


def test_users_claimed_but_missing_are_refused(admin_client, good):
    refused(admin_client, repack(good, {"includes_users": True}), "disagree on whether users are included")


def test_the_header_says_what_the_file_is(good):
    header = json.loads(unpack(good)["header.json"])
    assert header["format"] == "flotilla-backup" and header["format_version"] == 2
    assert header["origin"] == "cluster" and header["includes_users"] is False
    assert header["product_version"] and header["created"] and len(header["configuration_sha256"]) == 64
    assert header["protection"] == "cluster-key" and len(header["key_id"]) == 16 and len(header["hmac_sha256"]) == 64

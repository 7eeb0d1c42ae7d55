"""Crafted backups cost little and are refused with a reason: never a 500, never the value echoed whole.

The crafted content is authenticated with the cluster's own key (repack signs it), as for someone who
holds that key or a passphrase: what the restore then reads must still be bounded.
"""

import gzip
import json
import tarfile
import time
import tracemalloc

import pytest

from cluster.backup import rules as backup
from cluster.models import Interface
from tests.helpers import download, repack, restored_events, state, text_of, unpack, upload

MEMORY_BOUND = 64 * 2**20


@pytest.fixture
def good(admin_client, cluster_rows):
    return download(admin_client)


def refused(client, data, message, status=400):
    before = state()
    response = upload(client, data)
    assert response.status_code == status, text_of(response)[:2000]
    assert message in text_of(response), text_of(response)[:3000]
    assert "Nothing was changed" in text_of(response)
    assert state() == before
    assert restored_events() == 0
    return response


def measured(action):
    """(what action returned or raised, CPU seconds, peak bytes allocated) of one call."""
    tracemalloc.start()
    start = time.process_time()
    try:
        try:
            result = action()
        except Exception as e:  # the refusal is what is measured
            result = e
        return result, time.process_time() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def content_bomb(good, size):
    """The good backup's header, then a content.json of ``size`` bytes of ``[[],[],...]``, as gzip.

    The content is one 1 MiB gzip member repeated (a valid gzip file, which `tar xzf` opens): a few
    hundred KiB of file, hundreds of MiB once decompressed.
    """
    header = unpack(good)["header.json"]
    chunk = b"[]," * (2**20 // 3)
    count = size // len(chunk)
    size = 1 + count * len(chunk) + 3
    info = tarfile.TarInfo("header.json")
    info.size = len(header)
    head = info.tobuf(tarfile.PAX_FORMAT) + header + b"\0" * (-len(header) % 512)
    info = tarfile.TarInfo("content.json")
    info.size = size
    compressed = gzip.compress(chunk, compresslevel=9)
    parts = [gzip.compress(head + info.tobuf(tarfile.PAX_FORMAT) + b"[")]
    parts += [compressed] * count
    parts.append(gzip.compress(b"[]]" + b"\0" * (-size % 512) + b"\0" * 1024))
    return b"".join(parts)


def test_content_that_expands_to_hundreds_of_mib_is_refused_quickly_in_little_memory(admin_client, good, tmp_path):
    data = content_bomb(good, 512 * 2**20)
    assert len(data) < 2**20
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(data)

    error, cpu, peak = measured(lambda: backup.read(path))

    assert isinstance(error, backup.BackupError), error
    assert "once decompressed: no backup is that large" in str(error)
    assert cpu < 1 and peak < MEMORY_BOUND, (cpu, peak)
    refused(admin_client, data, "once decompressed: no backup is that large")


def test_authentic_content_of_millions_of_empty_lists_is_refused_before_it_is_parsed(admin_client, good, tmp_path):
    body = b"[" + b"[]," * (backup.MAX_CONTENT_BYTES // 3 - 1) + b"[]]"  # what json.loads makes 300 MiB of
    assert len(body) <= backup.MAX_CONTENT_BYTES
    data = repack(good, body=body)
    path = tmp_path / "lists.tar.gz"
    path.write_bytes(data)

    error, cpu, peak = measured(lambda: backup.read(path))

    assert isinstance(error, backup.BackupError), error
    assert "content.json holds more than 500000 values" in str(error)
    assert cpu < 2 and peak < MEMORY_BOUND, (cpu, peak)
    refused(admin_client, data, "content.json holds more than 500000 values")


def test_content_over_what_a_configuration_can_be_is_refused_by_its_size(admin_client, good):
    body = b'{"x":"' + b"a" * backup.MAX_CONTENT_BYTES + b'"}'
    refused(admin_client, repack(good, body=body), "content.json is 8.0 MiB, over its limit")


def test_deep_nesting_in_the_content_is_refused_with_a_reason(admin_client, good, tmp_path):
    body = b"[" * 200_000 + b"]" * 200_000  # json.loads: RecursionError
    data = repack(good, body=body)
    path = tmp_path / "deep.tar.gz"
    path.write_bytes(data)
    error, cpu, peak = measured(lambda: backup.read(path))
    assert isinstance(error, backup.BackupError) and cpu < 1 and peak < MEMORY_BOUND, (error, cpu, peak)
    refused(admin_client, data, "content.json nests deeper than 32 levels")


def test_deep_nesting_in_the_header_is_refused_with_a_reason(admin_client, good):
    members = unpack(good)
    data = backup.archive({"header.json": b"[" * 20_000 + b"]" * 20_000, "content.json": members["content.json"]})
    refused(admin_client, data, "header.json nests deeper than 32 levels")


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("Infinity", "Infinity is not a number JSON allows"),
        ("-Infinity", "-Infinity is not a number JSON allows"),
        ("NaN", "NaN is not a number JSON allows"),
        ("1e999", "the number &#x27;1e999&#x27; is too large"),
    ],
)
def test_a_number_that_is_not_finite_is_refused_with_a_reason(admin_client, good, number, message):
    content = json.loads(unpack(good)["content.json"])
    content["cluster"]["drain_time"] = "@number@"
    body = json.dumps(content, sort_keys=True).replace('"@number@"', number).encode()
    refused(admin_client, repack(good, body=body), f"content.json is not valid JSON ({message})")


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("10.0.0.300/24", "10.0.0.300/24"),
        ("not-an-address", "not-an-address"),
        ("10.0.0.7", "10.0.0.7"),
        (["10.0.0.7/24"], "[&#x27;10.0.0.7/24&#x27;]"),
        (7, "7"),
        ("10.0.0.7/24" + "x" * 5000, "is not an IPv4 address/prefix"),
    ],
    ids=["octet", "text", "no-prefix", "list", "number", "long"],
)
def test_a_malformed_additional_address_is_refused_with_a_reason(admin_client, good, address, said):
    def edit(content):
        content["interfaces"][0]["additional_addresses"] = ["10.0.0.201/24", address]

    response = refused(admin_client, repack(good, content_change=edit), "The settings in the backup are not valid")
    assert "Interface eth0: additional address" in text_of(response)
    assert said in text_of(response)
    assert "x" * 100 not in text_of(response)
    assert Interface.objects.get(name="eth0").additional_addresses == []


def test_a_long_bad_value_is_quoted_as_a_short_prefix(admin_client, good):
    def edit(content):
        content["virtual_services"][0]["scheduling"] = "rr" + "z" * 10_000

    response = refused(admin_client, repack(good, content_change=edit), "The settings in the backup are not valid")
    assert "rrzzz" in text_of(response) and "z" * 100 not in text_of(response)


def test_a_long_member_name_is_quoted_as_a_short_prefix(admin_client, good):
    members = unpack(good)
    data = backup.archive({"header.json": members["header.json"], "n" * 5000: b"{}"})
    response = refused(admin_client, data, "a backup holds only header.json and content.json")
    assert "n" * 100 not in text_of(response)

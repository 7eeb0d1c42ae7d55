"""Firmware patches: built for real with generated keys, then damaged one way at a time."""

import base64
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
import tracemalloc

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from firmware import patch
from firmware.patch import PatchError
from nodes.agent.build import build_zipapp, version_of

CREATED = "2026-11-26T08:00:00+00:00"
MAX_BYTES = 8 * 2**20


@pytest.fixture
def key():
    return patch.new_private_key()


@pytest.fixture
def trusted(key):
    return [patch.public_key_text(key)]


@pytest.fixture
def payload(tmp_path):
    root = tmp_path / "payload"
    (root / "nodes").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "nodes" / "agent.py").write_text('VERSION = "1.1.0"\n')
    (root / "nodes" / "agent.py").chmod(0o755)
    (root / "docs" / "readme.txt").write_text("Flotilla 1.1.0\n")
    return root


@pytest.fixture
def good(tmp_path, payload, key):
    path = tmp_path / "flotilla-1.1.0.patch"
    patch.build(path, payload, "1.1.0", key, created=CREATED)
    return path


def verify(path, trusted, running="1.0.0", **kwargs):
    return patch.verify(path, trusted, kwargs.pop("max_bytes", MAX_BYTES), running, **kwargs)


def members_of(path):
    """[(TarInfo, bytes)] of a small test patch, to damage and write back."""
    with tarfile.open(path, "r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def write(path, members):
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def regular(name, data=b"evil\n"):
    return tarfile.TarInfo(name), data


def special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, b""


def with_member(good, tmp_path, info_and_data):
    return write(tmp_path / "bad.patch", [*members_of(good), info_and_data])


def replaced(members, name, data):
    return [(info, data if info.name == name else content) for info, content in members]


def signed_manifest(document, key):
    """manifest.json and manifest.sig for a document, properly signed."""
    data = json.dumps(document).encode()
    return [regular(patch.MANIFEST, data), regular(patch.SIGNATURE, base64.b64encode(key.sign(data)))]


def resigned(good, tmp_path, key, **changes):
    """The good patch with its manifest changed and signed again by key."""
    members = members_of(good)
    document = {**json.loads(members[0][1]), **changes}
    return write(tmp_path / "resigned.patch", signed_manifest(document, key) + members[2:])


def refused(path, trusted, match, **kwargs):
    with pytest.raises(PatchError, match=match):
        verify(path, trusted, **kwargs)


# A good patch


def test_a_good_patch_verifies_and_says_what_it_holds(good, trusted, key):
    manifest = verify(good, trusted)
    assert (manifest.name, manifest.version, manifest.created) == ("flotilla", "1.1.0", CREATED)
    assert sorted(manifest.files) == ["payload/docs/readme.txt", "payload/nodes/agent.py"]
    assert manifest.files["payload/docs/readme.txt"].sha256 == hashlib.sha256(b"Flotilla 1.1.0\n").hexdigest()
    assert manifest.file_count == 2
    assert manifest.key == patch.public_key_text(key)
    assert manifest.sha256 == hashlib.sha256(good.read_bytes()).hexdigest()
    assert manifest.size == good.stat().st_size


def test_the_archive_holds_exactly_the_manifest_its_signature_and_the_payload(good):
    with tarfile.open(good, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "manifest.json",
        "manifest.sig",
        "payload/docs/readme.txt",
        "payload/nodes/agent.py",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert [m.mode for m in members] == [0o644, 0o644, 0o644, 0o755]


def test_the_signature_is_the_base64_of_64_raw_bytes_over_the_exact_manifest(good, key):
    members = dict((info.name, data) for info, data in members_of(good))
    signature = base64.b64decode(members["manifest.sig"], validate=True)
    assert len(signature) == 64
    key.public_key().verify(signature, members["manifest.json"])
    assert json.loads(members["manifest.json"])["format"] == 1


def test_building_twice_gives_the_same_bytes(tmp_path, payload, key, good):
    again = tmp_path / "again.patch"
    patch.build(again, payload, "1.1.0", key, created=CREATED)
    assert again.read_bytes() == good.read_bytes()


def test_extract_writes_the_payload_under_the_destination(good, trusted, tmp_path):
    manifest = verify(good, trusted)
    dest = tmp_path / "slot"
    dest.mkdir()
    assert patch.extract(good, dest, manifest) == ["payload/docs/readme.txt", "payload/nodes/agent.py"]
    assert (dest / "docs" / "readme.txt").read_text() == "Flotilla 1.1.0\n"
    assert (dest / "nodes" / "agent.py").read_text() == 'VERSION = "1.1.0"\n'
    assert stat.S_IMODE((dest / "nodes" / "agent.py").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "docs" / "readme.txt").stat().st_mode) == 0o644


def test_verify_streams_a_large_patch_without_holding_it_in_memory(tmp_path, key, trusted):
    root = tmp_path / "big"
    root.mkdir()
    (root / "blob.bin").write_bytes(os.urandom(24 * 2**20))  # random: gzip cannot shrink it
    path = tmp_path / "big.patch"
    patch.build(path, root, "1.1.0", key)
    tracemalloc.start()
    try:
        verify(path, trusted, max_bytes=64 * 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_versions_compare_as_numbers(tmp_path, payload, key, trusted):
    path = tmp_path / "p.patch"
    (payload / "nodes" / "agent.py").write_text('VERSION = "1.10.0"\n')
    patch.build(path, payload, "1.10.0", key)
    assert verify(path, trusted, running="1.9.0").version == "1.10.0"


# Refusals: the file


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path, trusted):
    path = tmp_path / "huge.patch"
    path.write_bytes(b"not even a patch" * 100)
    refused(path, trusted, r"the file is 1600 bytes, over the 1000 bytes limit", max_bytes=1000)


def test_a_file_that_is_not_gzip_is_not_a_firmware_patch(tmp_path, trusted):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a patch\n")
    refused(path, trusted, r"^not a firmware patch: the file is not gzip-compressed")


def test_a_gzip_that_holds_no_tar_is_not_a_firmware_patch(tmp_path, trusted):
    path = tmp_path / "log.gz"
    path.write_bytes(gzip.compress(b"just some log lines\n" * 100))
    refused(path, trusted, r"^not a firmware patch: the file is gzip-compressed but is not a tar archive")


def test_an_empty_file_is_not_a_firmware_patch(tmp_path, trusted):
    path = tmp_path / "empty.patch"
    path.touch()
    refused(path, trusted, r"^not a firmware patch: the file is empty")


@pytest.mark.parametrize("keep", [0.5, 0.9, -8])
def test_a_truncated_patch_is_refused(good, tmp_path, trusted, keep):
    data = good.read_bytes()
    path = tmp_path / "cut.patch"
    path.write_bytes(data[: int(len(data) * keep) if keep > 0 else keep])
    refused(path, trusted, r"^the patch is truncated or corrupt \(.+\); get a fresh copy")


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (2600, r"^the patch is truncated or corrupt \(unexpected end of data\)"),  # inside a file
        (3072, r"^payload/nodes/agent\.py is listed in the manifest but missing"),  # between members
    ],
)
def test_a_tar_cut_short_inside_a_whole_gzip_is_refused(good, tmp_path, trusted, cut, match):
    tar_bytes = gzip.decompress(good.read_bytes())
    path = tmp_path / "cut.patch"
    path.write_bytes(gzip.compress(tar_bytes[:cut]))
    refused(path, trusted, match)


# Refusals: manifest and signature


def test_a_patch_without_a_manifest_is_refused(good, tmp_path, trusted):
    path = write(tmp_path / "bad.patch", members_of(good)[1:])
    refused(path, trusted, r"the patch has no manifest\.json")


def test_an_unsigned_patch_is_refused(good, tmp_path, trusted):
    members = members_of(good)
    path = write(tmp_path / "bad.patch", [members[0], *members[2:]])
    refused(path, trusted, r"the patch has no manifest\.sig: it is not signed")


def test_a_manifest_edited_after_signing_is_refused(good, tmp_path, trusted):
    members = members_of(good)
    edited = members[0][1].replace(b'"version": "1.1.0"', b'"version": "9.9.9"')
    assert edited != members[0][1]
    path = write(tmp_path / "bad.patch", replaced(members, "manifest.json", edited))
    refused(path, trusted, r"^bad signature: manifest\.json was changed after it was signed")


def test_a_damaged_signature_is_refused(good, tmp_path, trusted):
    path = write(tmp_path / "bad.patch", replaced(members_of(good), "manifest.sig", b"not base64!"))
    refused(path, trusted, r"^bad signature")


def test_a_patch_signed_by_another_key_is_refused_naming_the_key(tmp_path, payload, trusted):
    other = patch.new_private_key()
    path = tmp_path / "other.patch"
    patch.build(path, payload, "1.1.0", other)
    other_text = re.escape(patch.public_key_text(other))
    refused(path, trusted, rf"^signed by an unknown key {other_text}: it is not one of the trusted firmware keys$")


def test_a_patch_that_claims_a_trusted_key_but_is_signed_by_another_is_refused(good, tmp_path, trusted):
    path = resigned(good, tmp_path, patch.new_private_key())  # the manifest still names the trusted key
    refused(path, trusted, r"^bad signature")


def test_an_unknown_format_version_is_refused(good, tmp_path, key, trusted):
    refused(resigned(good, tmp_path, key, format=2), trusted, r"^unknown patch format 2: this software reads format 1")


@pytest.mark.parametrize("version", ["1.1", "1.1.0.0", "v1.1.0", "1.01.0", "1.1.0-rc1", "１.１.０", 110])
def test_an_invalid_version_string_is_refused(good, tmp_path, key, trusted, version):
    refused(resigned(good, tmp_path, key, version=version), trusted, r"^invalid version string")


def test_a_patch_for_another_product_is_refused(good, tmp_path, key, trusted):
    refused(resigned(good, tmp_path, key, name="loadmaster"), trusted, r"this patch is for 'loadmaster', not flotilla")


def test_an_oversized_manifest_is_refused_without_reading_it(good, tmp_path, trusted, monkeypatch):
    monkeypatch.setattr(patch, "MAX_MANIFEST_BYTES", 100)
    refused(good, trusted, r"manifest\.json is \d+ bytes, more than the 100 bytes it may be")


def test_no_trusted_key_at_all_is_a_configuration_error(good):
    refused(good, [], r"no firmware signing key is trusted: put the public key .* in FIRMWARE_TRUSTED_KEYS")


def test_a_malformed_trusted_key_is_a_configuration_error(good):
    refused(good, ["c2hvcnQ="], r"the trusted key 'c2hvcnQ=' is not the base64 of a raw 32-byte ed25519 public key")


# Refusals: members


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (regular("../evil"), r"member '\.\./evil' climbs out of the patch with '\.\.'"),
        (regular("payload/../../evil"), r"member 'payload/\.\./\.\./evil' climbs out of the patch"),
        (regular("/etc/evil"), r"member '/etc/evil' has an absolute path"),
        (regular("./payload/x"), r"member '\./payload/x' is not a plain relative path"),
        (
            regular("README"),
            r"unexpected member 'README': a patch holds only manifest\.json, manifest\.sig and payload/",
        ),
        (special("payload/link", tarfile.SYMTYPE, "/etc/shadow"), r"member 'payload/link' is a symbolic link"),
        (special("payload/hard", tarfile.LNKTYPE, "manifest.json"), r"member 'payload/hard' is a hard link"),
        (special("payload/dev", tarfile.CHRTYPE), r"member 'payload/dev' is a character device"),
        (special("payload/fifo", tarfile.FIFOTYPE), r"member 'payload/fifo' is a FIFO"),
        (special("payload/dir", tarfile.DIRTYPE), r"member 'payload/dir' is a directory"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside",
        "absolute",
        "dot",
        "outside-payload",
        "symlink",
        "hardlink",
        "device",
        "fifo",
        "dir",
    ],
)
def test_a_dangerous_or_foreign_member_is_refused_by_name(good, tmp_path, trusted, member, match):
    refused(with_member(good, tmp_path, member), trusted, match)


def test_a_member_that_appears_twice_is_refused(good, tmp_path, trusted):
    path = with_member(good, tmp_path, regular("payload/docs/readme.txt", b"Flotilla 1.1.0\n"))
    refused(path, trusted, r"member 'payload/docs/readme\.txt' appears twice")


def test_a_listed_file_missing_from_the_payload_is_refused(good, tmp_path, trusted):
    members = [m for m in members_of(good) if m[0].name != "payload/docs/readme.txt"]
    refused(write(tmp_path / "bad.patch", members), trusted, r"^payload/docs/readme\.txt is listed in the manifest but")


def test_a_payload_file_not_in_the_manifest_is_refused(good, tmp_path, trusted):
    path = with_member(good, tmp_path, regular("payload/extra.sh", b"rm -rf /\n"))
    refused(path, trusted, r"^'payload/extra\.sh' is in the patch but not listed in the manifest")


def test_a_tampered_payload_byte_is_refused_naming_the_file(good, tmp_path, trusted):
    path = write(tmp_path / "bad.patch", replaced(members_of(good), "payload/docs/readme.txt", b"Flotilla 6.6.6\n"))
    refused(path, trusted, r"^checksum mismatch for payload/docs/readme\.txt")


def test_a_payload_file_of_another_size_is_refused_naming_the_file(good, tmp_path, trusted):
    path = write(tmp_path / "bad.patch", replaced(members_of(good), "payload/docs/readme.txt", b"Flotilla 1.1.0!\n"))
    refused(path, trusted, r"^size mismatch for payload/docs/readme\.txt: 16 bytes, the manifest says 15")


# Refusals cost little: a crafted patch is refused before its payload is decompressed

BLOB = 2**30  # 1 GiB of zeros: about 1 MiB of gzip, some 3 s of CPU to decompress and hash whole
ZEROS = gzip.compress(b"\0" * 2**20, compresslevel=9)


def tar_head(name, size, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o644
    return info.tobuf(tarfile.PAX_FORMAT)


def bomb(path, before, name, size, kind=tarfile.REGTYPE):
    """A gzip of: the tar bytes ``before``, a member ``name`` declaring ``size`` bytes of zeros, and the
    end of the archive. The zeros are the same 1 MiB gzip member over and over (a valid gzip file,
    which ``tar xzf`` reads), so the file is small and costs nothing to make."""
    assert size % 2**20 == 0
    with open(path, "wb") as f:
        f.write(gzip.compress(before + tar_head(name, size, kind)))
        for _ in range(size // 2**20):
            f.write(ZEROS)
        f.write(gzip.compress(b"\0" * 1024))
    return path


def tar_bytes(members):
    """The tar bytes of members, without the end of the archive: more members may follow."""
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
    for info, data in members:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def manifest_for(signer, files, claimed_key=None):
    document = {
        "created": CREATED,
        "files": {name: {"sha256": "0" * 64, "size": size} for name, size in files.items()},
        "format": 1,
        "key": claimed_key or patch.public_key_text(signer),
        "name": "flotilla",
        "version": "1.1.0",
    }
    return signed_manifest(document, signer)


def cpu_refused(path, trusted, match, **kwargs):
    """The refusal, and the CPU time it took."""
    start = time.process_time()
    refused(path, trusted, match, **kwargs)
    return time.process_time() - start


def test_a_patch_signed_by_an_unknown_key_is_refused_before_its_payload_is_read(tmp_path, trusted):
    stranger = patch.new_private_key()
    head = tar_bytes(manifest_for(stranger, {"payload/blob.bin": BLOB}))
    path = bomb(tmp_path / "stranger.patch", head, "payload/blob.bin", BLOB)
    assert path.stat().st_size < 2 * 2**20
    assert cpu_refused(path, trusted, r"^signed by an unknown key") < 0.3


def test_a_patch_with_a_bad_signature_is_refused_before_its_payload_is_read(tmp_path, trusted, key):
    forger = patch.new_private_key()
    head = tar_bytes(manifest_for(forger, {"payload/blob.bin": BLOB}, claimed_key=trusted[0]))
    path = bomb(tmp_path / "forged.patch", head, "payload/blob.bin", BLOB)
    assert cpu_refused(path, trusted, r"^bad signature") < 0.3


def test_a_payload_larger_than_the_manifest_declares_is_refused_before_it_is_read(good, tmp_path, trusted):
    # A signed manifest taken from a real patch, with a payload of another size behind it.
    head = tar_bytes(members_of(good)[:2])
    path = bomb(tmp_path / "swapped.patch", head, "payload/docs/readme.txt", BLOB)
    match = rf"^size mismatch for payload/docs/readme\.txt: {BLOB} bytes, the manifest says 15"
    assert cpu_refused(path, trusted, match) < 0.3


def test_bytes_beyond_what_the_manifest_declares_are_refused_as_soon_as_they_pass_it(good, tmp_path, trusted):
    path = tmp_path / "padded.patch"
    with open(path, "wb") as f:
        f.write(good.read_bytes())  # a whole patch, then a second gzip member of zeros: tar ignores it
        for _ in range(BLOB // 2**20):
            f.write(ZEROS)
    assert cpu_refused(path, trusted, r"^the patch holds more than its manifest\.json declares") < 0.3


def test_a_huge_tar_header_before_the_manifest_is_refused_before_it_is_read(tmp_path, trusted):
    size = 256 * 2**20  # tarfile reads a PAX header whole: this one would take 256 MiB of memory
    path = bomb(tmp_path / "pax.patch", b"", "././@PaxHeader", size, tarfile.XHDTYPE)
    tracemalloc.start()
    try:
        start = time.process_time()
        refused(path, trusted, r"^the patch does not begin with manifest\.json and manifest\.sig")
        cpu = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cpu < 0.3 and peak < 32 * 2**20


def test_a_manifest_that_is_not_first_is_refused_before_anything_else_is_read(good, tmp_path, trusted):
    members = members_of(good)
    path = write(tmp_path / "late.patch", [members[2], *members[:2], members[3]])
    refused(path, trusted, r"^the patch has no manifest\.json as its first member")


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        (b"[" * 100_000 + b"]" * 100_000, r"^manifest\.json nests deeper than 32 levels"),
        (b'{"format": 1, "size": Infinity}', r"^manifest\.json is not valid JSON \(Infinity is not a number"),
        (b'{"format": 1, "size": NaN}', r"^manifest\.json is not valid JSON \(NaN is not a number"),
        (b'{"format": 1, "size": 1e999}', r"^manifest\.json is not valid JSON \(the number '1e999' is too large\)"),
        (b"[" + b"0," * 600_000 + b"0]", r"^manifest\.json holds more than 500000 values"),
    ],
    ids=["deep", "infinity", "nan", "overflow", "many"],
)
def test_a_manifest_that_json_would_choke_on_is_refused_with_a_reason(good, tmp_path, trusted, manifest, match):
    members = members_of(good)
    path = write(tmp_path / "bad.patch", replaced(members, "manifest.json", manifest))
    refused(path, trusted, match)


def test_a_long_value_in_a_refusal_is_quoted_as_a_short_prefix(good, tmp_path, trusted, key):
    long = "loadmaster-" + "x" * 5000
    with pytest.raises(PatchError) as refusal:
        verify(resigned(good, tmp_path, key, name=long), trusted)
    assert "loadmaster-xxx" in str(refusal.value) and len(str(refusal.value)) < 200
    with pytest.raises(PatchError) as refusal:
        verify(resigned(good, tmp_path, key, format="9" * 5000), trusted)
    assert len(str(refusal.value)) < 200


# Refusals: version


def test_the_same_version_as_running_is_refused_unless_a_downgrade_is_confirmed(good, trusted):
    with pytest.raises(PatchError) as refusal:
        verify(good, trusted, running="1.1.0")
    assert str(refusal.value) == (
        "version 1.1.0 is not newer than the running 1.1.0; confirm a downgrade to install it anyway"
    )
    assert verify(good, trusted, running="1.1.0", allow_downgrade=True).version == "1.1.0"


def test_an_older_version_is_refused(good, trusted):
    refused(good, trusted, r"^version 1\.1\.0 is not newer than the running 1\.2\.0", running="1.2.0")


# extract() checks again


def test_extract_refuses_a_path_outside_the_destination_and_writes_nothing_there(good, tmp_path):
    path = with_member(good, tmp_path, regular("payload/../../evil"))
    dest = tmp_path / "slot"
    dest.mkdir()
    with pytest.raises(PatchError, match="climbs out"):
        patch.extract(path, dest)
    assert not (tmp_path / "evil").exists()


def test_extract_refuses_a_symlink_member(good, tmp_path):
    path = with_member(good, tmp_path, special("payload/link", tarfile.SYMTYPE, "/etc"))
    (tmp_path / "slot").mkdir()
    with pytest.raises(PatchError, match="is a symbolic link"):
        patch.extract(path, tmp_path / "slot")


def test_extract_does_not_follow_a_symlinked_directory_out_of_the_destination(good, tmp_path):
    dest, outside = tmp_path / "slot", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "nodes").symlink_to(outside)
    with pytest.raises(PatchError, match=r"payload/nodes/agent\.py would be written outside"):
        patch.extract(good, dest)
    assert list(outside.iterdir()) == []


def test_extract_catches_a_patch_swapped_after_verify(good, tmp_path, trusted, payload, key):
    manifest = verify(good, trusted)
    (payload / "docs" / "readme.txt").write_text("Something else\n")
    patch.build(good, payload, "1.1.0", key, created=CREATED)
    (tmp_path / "slot").mkdir()
    with pytest.raises(PatchError, match=r"checksum mismatch for payload/docs/readme\.txt"):
        patch.extract(good, tmp_path / "slot", manifest)


# build() refusals


def test_build_refuses_a_symlink_in_the_payload(tmp_path, payload, key):
    (payload / "link").symlink_to("/etc/passwd")
    with pytest.raises(PatchError, match=r"link is a symbolic link; a patch carries regular files only"):
        patch.build(tmp_path / "p.patch", payload, "1.1.0", key)
    assert not (tmp_path / "p.patch").exists()


def test_build_refuses_an_empty_payload_and_a_bad_version(tmp_path, key, payload):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PatchError, match="holds no files"):
        patch.build(tmp_path / "p.patch", tmp_path / "empty", "1.1.0", key)
    with pytest.raises(PatchError, match="invalid version string '1.1'"):
        patch.build(tmp_path / "p.patch", payload, "1.1", key)


# manage.py build_firmware


def run(*args):
    out = io.StringIO()
    call_command("build_firmware", *args, stdout=out)
    return out.getvalue()


def test_new_key_writes_a_private_pem_and_prints_the_key_to_trust(tmp_path):
    keyfile = tmp_path / "signing.pem"
    printed = run("--new-key", str(keyfile)).splitlines()[-1]
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert keyfile.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert len(base64.b64decode(printed, validate=True)) == 32
    with pytest.raises(CommandError, match="exists; refusing to overwrite a signing key"):
        run("--new-key", str(keyfile))


def test_build_firmware_packages_the_node_agent_with_the_version_stamped(tmp_path):
    keyfile, out = tmp_path / "signing.pem", tmp_path / "flotilla-1.1.0.patch"
    public = run("--new-key", str(keyfile)).splitlines()[-1]
    assert "Built" in run("--version", "1.1.0", "--key", str(keyfile), "--out", str(out))
    manifest = verify(out, [public])
    assert list(manifest.files) == ["payload/bin/flotilla-agent"]
    (tmp_path / "slot").mkdir()
    patch.extract(out, tmp_path / "slot", manifest)
    assert version_of(tmp_path / "slot" / "bin" / "flotilla-agent") == "1.1.0"
    assert stat.S_IMODE((tmp_path / "slot" / "bin" / "flotilla-agent").stat().st_mode) == 0o755


def test_build_firmware_adds_the_agent_to_a_payload_without_one(tmp_path):
    keyfile, out, extra = tmp_path / "signing.pem", tmp_path / "p.patch", tmp_path / "extra"
    public = run("--new-key", str(keyfile)).splitlines()[-1]
    extra.mkdir()
    (extra / "notes.txt").write_text("hello\n")
    run("--version", "1.2.0", "--payload", str(extra), "--key", str(keyfile), "--out", str(out))
    assert sorted(verify(out, [public]).files) == ["payload/bin/flotilla-agent", "payload/notes.txt"]


def test_build_firmware_refuses_an_agent_of_another_version(tmp_path, payload):
    keyfile = tmp_path / "signing.pem"
    run("--new-key", str(keyfile))
    (payload / "bin").mkdir()
    build_zipapp(payload / "bin" / "flotilla-agent", "1.1.0")
    with pytest.raises(CommandError, match=r'flotilla-agent says VERSION = "1\.1\.0" but --version is 1\.2\.0'):
        run("--version", "1.2.0", "--payload", str(payload), "--key", str(keyfile), "--out", str(tmp_path / "p"))


def test_build_firmware_says_what_is_missing(tmp_path):
    with pytest.raises(CommandError, match="--key, --out required"):
        run("--version", "1.1.0")
    with pytest.raises(CommandError, match=r"cannot load the signing key"):
        run("--version", "1.1.0", "--key", str(tmp_path / "nope.pem"), "--out", str(tmp_path / "p"))
    with pytest.raises(CommandError, match=r"invalid version string '1\.1\.0\"'"):
        run("--version", '1.1.0"', "--key", str(tmp_path / "nope.pem"), "--out", str(tmp_path / "p"))

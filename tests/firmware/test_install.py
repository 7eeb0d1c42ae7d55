"""A patch sent to a real unit over SFTP, checked there, installed in the inactive slot, active after reboot."""

import hashlib
import io
import json
import tarfile
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cluster import ssh
from firmware import patch
from nodes.agent.build import AGENT_PAYLOAD, build_zipapp, version_of
from nodes.agent.formats import SCHEMAS, VERSION
from tests.harness import AGENT_PYTHON


def target(unit):
    return ssh.Target(f"node {unit.n}", unit.address, 2222, unit.user, unit.host_key_line)


def build_patch(tmp_path, version="1.1.0"):
    payload = tmp_path / "payload"
    (payload / "bin").mkdir(parents=True)
    build_zipapp(payload / AGENT_PAYLOAD, version)
    out = tmp_path / "update.patch"
    patch.build(out, payload, version, Ed25519PrivateKey.generate())
    return out


def send(unit, path):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    ssh.get_pool().put(target(unit), path, f"{digest}.patch")
    return digest


def state(unit, name):
    path = unit.home / name
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_patch_is_installed_in_the_inactive_slot_and_runs_after_the_reboot(units, tmp_path):
    unit = units.node(2)
    digest = send(unit, build_patch(tmp_path))
    result = ssh.get_pool().call(target(unit), "firmware-install", f"{digest}.patch", digest)
    assert result == {"slot": "b", "version": "1.1.0", "pending": True}
    assert ssh.get_pool().call(target(unit), "status")["version"] == "1.0.0"  # not before the reboot
    unit.restart()
    ssh.get_pool().close_all()
    assert ssh.get_pool().call(target(unit), "status")["version"] == "1.1.0"
    assert state(unit, "slots.json") == {"active": "b"}


def test_a_patch_damaged_in_transfer_is_refused_and_nothing_changes(units, tmp_path):
    unit = units.node(3)
    good = build_patch(tmp_path)
    damaged = tmp_path / "damaged.patch"
    damaged.write_bytes(good.read_bytes()[:-10] + b"0123456789")
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    ssh.get_pool().put(target(unit), damaged, f"{digest}.patch")
    with pytest.raises(ssh.CommandFailed, match="checksum mismatch: the patch was damaged in transfer"):
        ssh.get_pool().call(target(unit), "firmware-install", f"{digest}.patch", digest)
    assert state(unit, "slots.json") == {}


def test_a_payload_that_does_not_match_its_manifest_is_refused(units, tmp_path):
    unit = units.node(4)
    good = build_patch(tmp_path)
    forged = tmp_path / "forged.patch"
    with tarfile.open(good, "r:gz") as src, tarfile.open(forged, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()
            if member.name.startswith("payload/"):
                data = data.replace(b"#!", b"#?", 1)  # one byte of the agent changed
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    digest = send(unit, forged)
    with pytest.raises(ssh.CommandFailed, match="payload does not match the manifest: payload/bin/flotilla-agent"):
        ssh.get_pool().call(target(unit), "firmware-install", f"{digest}.patch", digest)
    assert state(unit, "slots.json") == {}
    assert not (unit.home / "slots" / "b").exists()


def test_a_patch_with_a_path_outside_itself_is_refused(units, tmp_path):
    unit = units.node(4)
    evil = tmp_path / "evil.patch"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("payload/../../bin/flotilla-agent")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    digest = send(unit, evil)
    with pytest.raises(ssh.CommandFailed, match="only plain files inside the patch are allowed"):
        ssh.get_pool().call(target(unit), "firmware-install", f"{digest}.patch", digest)
    assert b"evil" not in (unit.home / "bin" / "flotilla-agent").read_bytes()


def test_a_unit_runs_the_one_file_agent(units, tmp_path):
    """The harness installs what a patch carries: the zipapp, byte for byte, run over SSH as before."""
    unit = units.node(1)
    installed = unit.home / "bin" / "flotilla-agent"
    built = build_zipapp(tmp_path / "flotilla-agent", interpreter=f"{AGENT_PYTHON} -IS")
    assert zipfile.is_zipfile(installed)
    assert installed.read_bytes() == built.read_bytes()
    assert version_of(installed) == VERSION
    assert ssh.get_pool().call(target(unit), "status") | {"time": 0} == {
        "ok": True,
        "time": 0,
        "version": VERSION,
        "mode": "standalone",
        "accepting": True,
        "active_connections": 0,
        "connections": 0,
        "requests_per_second": 0,
        "dataplane": {"running": True},
        "booted_at": unit.agent("status")["booted_at"],
        "generation": 0,
        "schemas": list(SCHEMAS),
    }


def test_an_update_replaces_the_one_file_agent_at_the_reboot(units, tmp_path):
    unit = units.node(3)
    digest = send(unit, build_patch(tmp_path, "1.2.0"))
    ssh.get_pool().call(target(unit), "firmware-install", f"{digest}.patch", digest)
    assert version_of(unit.home / "slots" / "b" / "bin" / "flotilla-agent") == "1.2.0"
    assert version_of(unit.home / "bin" / "flotilla-agent") == VERSION  # not before the reboot
    unit.restart()
    ssh.get_pool().close_all()
    assert version_of(unit.home / "bin" / "flotilla-agent") == "1.2.0"
    assert zipfile.is_zipfile(unit.home / "bin" / "flotilla-agent")
    assert ssh.get_pool().call(target(unit), "status")["version"] == "1.2.0"

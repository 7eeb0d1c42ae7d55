"""What node and control plane agree on, from its one home (nodes/agent/formats.py)."""

import json
import os
import stat
import tarfile

import pytest

from cluster.backup import rules as backup
from cluster.configuration import rules as config
from firmware import patch
from nodes.agent import firmware, formats
from nodes.agent.formats import DRAIN_TIME, MTU, VIRTUAL_ID, UnsafeMember, check_tar_member


def member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


REFUSED = [
    (member("../evil"), "climbs out of the archive with '..'", "path"),
    (member("payload/../../etc/passwd"), "climbs out", "path"),
    (member("a/.."), "climbs out", "path"),
    (member("/etc/passwd"), "has an absolute path", "path"),
    (member("./x"), "is not a plain relative path", "path"),
    (member("a//b"), "is not a plain relative path", "path"),
    (member("a/"), "is not a plain relative path", "path"),
    (member("a\\..\\b"), "is not a plain relative path", "path"),
    (member("a\nb"), "is not a plain relative path", "path"),
    (member(""), "has no name", "name"),
    (member("x" * 256), "a part over 255", "name"),
    (member("a/" * 600 + "b"), "a name over 1024 characters", "name"),
    (member("link", tarfile.SYMTYPE, "/etc/shadow"), "is a symbolic link", "link"),
    (member("inside", tarfile.SYMTYPE, "x"), "is a symbolic link", "link"),  # even pointing inside
    (member("hard", tarfile.LNKTYPE, "x"), "is a hard link", "link"),
    (member("dev", tarfile.CHRTYPE), "is a character device", "type"),
    (member("disk", tarfile.BLKTYPE), "is a block device", "type"),
    (member("fifo", tarfile.FIFOTYPE), "is a FIFO", "type"),
    (member("dir", tarfile.DIRTYPE), "is a directory; a archive holds regular files only", "type"),
    (member("sparse", tarfile.GNUTYPE_SPARSE), "is of tar type", "type"),
]


@pytest.mark.parametrize(("info", "reason", "kind"), REFUSED, ids=[repr(m.name[:20]) for m, _, _ in REFUSED])
def test_the_tar_member_rule_refuses_traversal_links_and_anything_but_plain_files(info, reason, kind):
    with pytest.raises(UnsafeMember, match=reason.replace("(", r"\(")) as refused:
        check_tar_member(info)
    assert refused.value.kind == kind
    assert len(str(refused.value)) < 200  # the name is quoted short


def test_the_tar_member_rule_lets_plain_files_and_asked_for_directories_through():
    assert check_tar_member(member("payload/bin/flotilla-agent"), "patch") == ["payload", "bin", "flotilla-agent"]
    assert check_tar_member(member("dir", tarfile.DIRTYPE), directories=True) == ["dir"]
    with pytest.raises(UnsafeMember, match="is a symbolic link; a patch holds regular files and directories only"):
        check_tar_member(member("l", tarfile.SYMTYPE, "x"), "patch", directories=True)


@pytest.mark.parametrize(
    "info",
    [member("../x"), member("/x"), member("payload/x", tarfile.SYMTYPE, "/etc/passwd")],
    ids=["dotdot", "absolute", "symlink"],
)
def test_patch_backup_and_agent_refuse_by_the_same_rule(info):
    """The three readers of tar files wrap the one rule, each in its own words."""
    with pytest.raises(patch.PatchError, match=r"member .* (climbs out of the patch|absolute path|symbolic link)"):
        patch.check_member(info)
    with pytest.raises(backup.BackupError, match="a path outside itself"):
        backup._check_member(info, {})
    with pytest.raises(firmware.AgentError, match="only plain files inside the patch are allowed"):
        firmware._check_member(info)


def test_the_ranges_are_whole_numbers_between_their_bounds():
    assert (VIRTUAL_ID.low, VIRTUAL_ID.high, VIRTUAL_ID.default, VIRTUAL_ID.text) == (1, 255, 1, "1-255")
    assert (DRAIN_TIME.low, DRAIN_TIME.high, DRAIN_TIME.default) == (1, 600, 10)
    assert (MTU.low, MTU.high, MTU.default) == (576, 9216, 1500)
    assert 1 in VIRTUAL_ID and 255 in VIRTUAL_ID
    for value in (0, 256, True, 1.0, "1", None):
        assert value not in VIRTUAL_ID


def test_the_control_plane_hashes_the_canonical_json_the_agent_checks():
    document = {"b": [1, {"d": "é", "c": None}], "a": 1}
    assert config.canonical is formats.canonical
    assert formats.canonical(document) == b'{"a":1,"b":[1,{"c":null,"d":"\\u00e9"}]}'
    assert json.loads(formats.canonical(document)) == document


def test_the_atomic_write_replaces_whole_with_its_mode_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "key"
    target.write_text("old")
    formats.atomic_write(target, b"new", 0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["key"]
    with pytest.raises(TypeError):
        formats.atomic_write(target, "not bytes", 0o600)
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["key"]

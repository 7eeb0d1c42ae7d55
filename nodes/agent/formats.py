"""What the node and the control plane must agree on, written once.

The agent checks what it is given against these; the control plane imports
them from here (``from nodes.agent.formats import canonical``) instead of
writing its own copy: the schemas it may send, the hardware a cluster
compares, the valid ranges of the cluster parameters, the canonical JSON that
is hashed, the SSH fingerprint as shown, which tar members may be unpacked,
and how a file is replaced atomically. Standard library only.
"""

import base64
import hashlib
import json
import os
import re
import ssl
import tarfile
import tempfile

VERSION = "1.0.0"  # the software version; build_zipapp() stamps a patch's version here
SCHEMAS = (1,)  # configuration document schemas this version can apply
HARDWARE_KEYS = ("cpu_count", "memory_mib", "disk_gib", "virtual")  # identical on every node of a cluster


# --- valid ranges ------------------------------------------------------------------------------


class Range:
    """Whole numbers from low to high; ``value in RANGE`` refuses bools, floats and text."""

    __slots__ = ("default", "high", "label", "low")

    def __init__(self, label, low, high, default):
        self.label, self.low, self.high, self.default = label, low, high, default

    def __repr__(self):
        return f"Range({self.label!r}, {self.low}, {self.high}, {self.default})"

    def __contains__(self, value):
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    @property
    def text(self):
        """As the pages write it: "(Valid Values: 1-255)"."""
        return f"{self.low}-{self.high}"


VIRTUAL_ID = Range("Cluster Virtual ID", 1, 255, 1)
DRAIN_TIME = Range("Node Drain Time", 1, 600, 10)  # seconds
MTU = Range("MTU", 576, 9216, 1500)
# A Virtual Service's Health Check URL: a path of printable ASCII without what HAProxy's file format
# reads as syntax (quotes, backslash, # starts a comment) and no space or control character.
CHECK_URL = re.compile(r"/[\x21\x24-\x26\x28-\x5b\x5d-\x7e]{0,254}")
CHECK_URL_TEXT = "a path that starts with /, such as /health (no spaces, quotes, backslashes or #)"


# --- canonical JSON and fingerprints -----------------------------------------------------------


def canonical(document):
    """The bytes a configuration document (or a backup header) is hashed and signed as."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def fingerprint(key_line):
    """An OpenSSH public key line's SHA256 fingerprint, as ``ssh-keygen -l`` shows it."""
    if not key_line:
        return ""
    digest = hashlib.sha256(base64.b64decode(key_line.split()[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# Where a unit keeps the certificate its WUI serves, under its state directory: the certificate
# alone (public, read by the agent for its facts) and the private key with it (0600, what the
# WUI's server loads, one file so that a replacement is a single rename).
TLS_DIRECTORY = "tls"
TLS_CERTIFICATE = "wui.crt"
TLS_KEY_AND_CERTIFICATE = "wui.pem"


def tls_fingerprint(der):
    """A TLS certificate's SHA-256 fingerprint as browsers and ``openssl x509 -fingerprint`` show it."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def pem_certificate_fingerprint(pem):
    """The fingerprint of the first certificate of a PEM file (a chain may follow it): the one served.

    ValueError when there is no certificate.
    """
    end = pem.index(ssl.PEM_FOOTER) + len(ssl.PEM_FOOTER)
    return tls_fingerprint(ssl.PEM_cert_to_DER_cert(pem[:end]))


# --- tar members -------------------------------------------------------------------------------

MAX_MEMBER_NAME = 1024  # characters in a member's whole path
MAX_NAME_PART = 255  # bytes in one path component (NAME_MAX)

_KINDS = (
    (tarfile.TarInfo.issym, "a symbolic link", "link"),
    (tarfile.TarInfo.islnk, "a hard link", "link"),
    (tarfile.TarInfo.isdir, "a directory", "type"),
    (tarfile.TarInfo.ischr, "a character device", "type"),
    (tarfile.TarInfo.isblk, "a block device", "type"),
    (tarfile.TarInfo.isfifo, "a FIFO", "type"),
)


class UnsafeMember(ValueError):
    """A tar member that must not be unpacked.

    ``kind``: "path" (it could land outside the archive's directory), "name" (no name, or one over the
    bounds), "link" (symbolic or hard) or "type" (a directory, device, FIFO, ...).
    """

    def __init__(self, name, problem, kind):
        super().__init__(f"member {short(name)} {problem}")
        self.name, self.kind = name, kind


def short(value, limit=40):
    """A short, printable prefix of a refused value, quoted, for a refusal message (the WUI quotes the same way)."""
    text = str(value)
    printable = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return repr(printable) + (f"... ({len(text)} characters)" if len(text) > limit else "")


def check_member_name(name, what="archive"):
    """Refuse a member path that could land outside the archive's directory, or that no archive of ours holds."""
    if not isinstance(name, str) or not name:
        raise UnsafeMember(name, "has no name", "name")
    if name.startswith("/"):
        raise UnsafeMember(name, f"has an absolute path; a {what} holds relative paths only", "path")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeMember(name, f"climbs out of the {what} with '..'", "path")
    if "" in parts or "." in parts or "\\" in name or not name.isprintable():
        raise UnsafeMember(name, "is not a plain relative path", "path")
    if len(name) > MAX_MEMBER_NAME or any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_PART for p in parts):
        raise UnsafeMember(name, f"has a name over {MAX_MEMBER_NAME} characters or a part over {MAX_NAME_PART}", "name")
    return parts


def check_tar_member(member, what="archive", directories=False):
    """The one rule for unpacking: a plain relative path, a regular file (or a directory, if allowed).

    Symbolic and hard links, devices and FIFOs are always refused. Returns the path's parts.
    """
    parts = check_member_name(member.name, what)
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) or (directories and member.isdir()):
        return parts
    label, kind = next(((label, kind) for test, label, kind in _KINDS if test(member)), (None, "type"))
    label = label or f"of tar type {member.type!r}"
    allowed = "regular files and directories" if directories else "regular files"
    raise UnsafeMember(member.name, f"is {label}; a {what} holds {allowed} only", kind)


# --- files -------------------------------------------------------------------------------------


def atomic_write(path, data, mode=0o644, owner=None):
    """Replace the file at path with data: a crash leaves the old file or the new one, never a part.

    Written to a temporary file in the same directory, flushed to disk, given its mode (and its
    owner, a (uid, gid) pair, if given), renamed over path; then the directory is flushed so that
    the rename itself survives a power loss.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def replace_durably(source, path):
    """Rename a finished file into place, and make the rename survive a power loss."""
    os.replace(source, path)
    fsync_dir(os.path.dirname(os.fspath(path)) or ".")


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

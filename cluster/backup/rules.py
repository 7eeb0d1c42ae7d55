"""Backup/Restore of the configuration: the backup file, its checks, the compatibility report, the restore.

A backup is a gzip-compressed tar holding exactly two regular files, ``header.json`` then the
content. A tar rather than one JSON document: it is the same container as a firmware patch (the
same member checks apply), ``tar xzf`` lets an operator look inside, and later members
(certificates, say) fit without base64 inside JSON.

Nothing in a backup is taken on trust: it may hold users with their password hashes and the nodes'
pinned SSH host keys, so an edited one must never restore. Every backup is authenticated with a
secret, one of two:

- the cluster's own backup key (``settings.BACKUP_KEY_FILE``, made on first use, never in the
  database and so never in a backup): the content is ``content.json`` (canonical JSON) and the
  header's ``hmac_sha256`` is an HMAC-SHA256 over the canonical header without that field, a
  newline and the exact bytes of ``content.json``. Only this cluster (or a unit given a copy of
  its key file) can restore it; automatic backups are of this kind;
- an operator's passphrase, for a backup to restore on another cluster or unit: the content is
  ``content.enc``, ``content.json`` encrypted with AES-256-GCM under a key derived from the
  passphrase with scrypt; the salt, the scrypt parameters and the nonce are in the header, and the
  whole canonical header is the associated data, so it cannot be changed either.

Every refusal is a ``BackupError`` whose message is for the operator (a value from the file is
quoted as a short prefix only); nothing is written before the whole file has been read,
authenticated and checked. Reading one costs little whatever it holds: the decompressed size of
each member is bounded by what it can be, and JSON is read through ``wui.bounded``.
"""

import base64
import binascii
import contextlib
import copy
import gzip
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import tarfile
import time
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from cluster import clock, events
from cluster.configuration import rules as config
from cluster.models import Cluster, Interface, Node, NodeInterface, RealServer, Rollout, VirtualService
from cluster.network import document as network
from cluster.rollout import rules as rollout
from cluster.rollout import versions
from cluster.virtual_services import rules as virtual_services
from nodes import agent
from nodes.agent.formats import UnsafeMember, atomic_write, check_tar_member
from wui import bounded
from wui.text import clip, human_size, short

FORMAT = "flotilla-backup"
FORMAT_VERSION = 2
HEADER, CONTENT, SEALED = "header.json", "content.json", "content.enc"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 2**20
# What each member can be once decompressed. A configuration is kilobytes: 64 nodes and thousands of
# Virtual Services stay well under 8 MiB of JSON, and so under the values wui.bounded allows.
MAX_HEADER_BYTES = 64 * 1024
MAX_CONTENT_BYTES = 8 * 2**20
TAG_BYTES = 16  # AES-GCM's tag, after the encrypted content
MEMBER_LIMITS = {HEADER: MAX_HEADER_BYTES, CONTENT: MAX_CONTENT_BYTES, SEALED: MAX_CONTENT_BYTES + TAG_BYTES}
TAR_ROOM = 64 * 1024  # tar's own headers, PAX records, padding and end-of-archive blocks
MAX_TAR_BYTES = MAX_HEADER_BYTES + MAX_CONTENT_BYTES + TAG_BYTES + TAR_ROOM
CLUSTER_KEY, PASSPHRASE = "cluster-key", "passphrase"
MAC_FIELD = "hmac_sha256"
HEX64 = re.compile(r"[0-9a-f]{64}")
# scrypt: 32 MiB and some 70 ms per derivation. A backup names its own parameters; a reader runs no
# more than twice that, so a crafted header cannot make it spend GiB.
SCRYPT = {"name": "scrypt", "n": 2**15, "r": 8, "p": 1}
SCRYPT_MAX_N = 2**16
MIN_PASSPHRASE, MAX_PASSPHRASE = 12, 1024
CIPHER = "AES-256-GCM"
LOCAL_NETWORK = "local_network.json"  # a standalone unit's own Network Setup (nodes/network_views.py)
USER_FIELDS = ("username", "password", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")
USER_TEXT, USER_FLAGS = USER_FIELDS[:5], USER_FIELDS[5:]
SAVED_NAME = re.compile(r"flotilla-backup-\d{8}T\d{6}Z\.tar\.gz")
PENDING_TTL = 3600
ANOTHER_KEY = (
    "The backup was made by another cluster or unit (or before this unit's backup key was replaced): "
    "it cannot be authenticated here, so it is not restored. To restore a configuration on another cluster "
    "or unit, create the backup there with a passphrase"
)


class BackupError(Exception):
    """A backup refused, or a restore that did not happen; nothing was changed."""


@dataclass(frozen=True)
class Backup:
    header: dict
    content: dict

    @property
    def origin(self):
        return self.header["origin"]


# --- the cluster's backup key -------------------------------------------------------


def cluster_key():
    """The secret that authenticates this cluster's backups: made once, mode 0600, never in the database."""
    path = Path(settings.BACKUP_KEY_FILE)
    if not path.exists():
        _create_key(path)
    text = path.read_text(errors="replace").strip()
    if not HEX64.fullmatch(text):
        raise BackupError(
            f"The backup key file {path} is damaged: restore it from a copy, or remove it to make a new one"
        )
    return bytes.fromhex(text)


def _create_key(path):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # A link, not a rename: a key another process made meanwhile is kept, or the backups it
        # has already authenticated would no longer restore.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def key_id(key):
    """Names a key without giving it away: tells a backup of another cluster from an edited one."""
    return hmac.new(key, b"flotilla backup key id", hashlib.sha256).hexdigest()[:16]


def mac(key, header, content_bytes):
    fields = {k: v for k, v in header.items() if k != MAC_FIELD}
    return hmac.new(key, config.canonical(fields) + b"\n" + content_bytes, hashlib.sha256).hexdigest()


def check_passphrase(passphrase, again):
    """The passphrase an operator chose for a backup, or BackupError saying what is wrong with it."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"A passphrase has at least {MIN_PASSPHRASE} characters")
    if len(passphrase) > MAX_PASSPHRASE:
        raise BackupError(f"A passphrase has at most {MAX_PASSPHRASE} characters")
    if passphrase != again:
        raise BackupError("The two passphrases differ: type the same one twice")
    return passphrase


def _derive(passphrase, kdf, salt):
    # The same passphrase typed on another system may come in another Unicode form.
    secret = unicodedata.normalize("NFC", passphrase).encode()
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(secret)


def _b64(data):
    return base64.b64encode(data).decode()


# --- taking a backup --------------------------------------------------------------


def local_origin():
    """What this WUI's configuration is: a cluster's (the shared address of a cluster) or a standalone unit's."""
    if settings.FLOTILLA_ROLE == "shared" and virtual_services.clustering():
        return "cluster"
    return "standalone"


def snapshot(include_users=False):
    """Everything a restore needs, from the database (and, on a unit's own WUI, its own Network Setup)."""
    cluster = Cluster.get()
    content = {
        "cluster": {f: getattr(cluster, f) for f in ("mode", "shared_address", "virtual_id", "drain_time")},
        "nodes": [_node_entry(n) for n in Node.objects.order_by("number")],
        "interfaces": [_interface_entry(i) for i in Interface.objects.order_by("index")],
        "virtual_services": config.render()["virtual_services"],
        "local_network": agent.read_json(LOCAL_NETWORK, {}) if settings.FLOTILLA_ROLE == "node" else None,
    }
    if include_users:
        users = get_user_model().objects.order_by("username")
        content["users"] = [{f: getattr(u, f) for f in USER_FIELDS} for u in users]
    return content


NODE_FIELDS = ("number", "address", "ssh_port", "ssh_user", "host_key", "is_admin", "enabled")
INTERFACE_FIELDS = (
    "index",
    "name",
    "cluster_shared_address",
    "use_for_cluster_checks",
    "use_for_cluster_updates",
    "use_for_geo",
    "mtu",
    "link_mode",
    "additional_addresses",
)


def _node_entry(node):
    return {**{f: getattr(node, f) for f in NODE_FIELDS}, "facts": node.facts}


def _interface_entry(interface):
    sides = interface.node_interfaces.select_related("node").order_by("node__number")
    return {
        **{f: getattr(interface, f) for f in INTERFACE_FIELDS},
        "nodes": [
            {"number": s.node.number, "address": s.address, "use_for_default_gateway": s.use_for_default_gateway}
            for s in sides
        ],
    }


def build(include_users=False, now=None, passphrase=None):
    """The backup file's bytes (a configuration is small: kilobytes, so it is built in memory).

    Without a passphrase it is authenticated with the cluster's key; with one, encrypted under it.
    """
    nested = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not nested:
            # One snapshot for every read below: a change committed half way would otherwise give a
            # content and a configuration_sha256 that disagree, and the restore would refuse the file.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        content = config.canonical(snapshot(include_users))
        rendered = config.canonical(config.render())
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "product_version": versions.cluster_version(),
        "created": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "origin": local_origin(),
        "includes_users": include_users,
        # What config.render() gave: a restore into the same kind of unit must give it again.
        "configuration_sha256": hashlib.sha256(rendered).hexdigest(),
    }
    return seal(header, content, passphrase)


def download(actor, include_users=False, passphrase=""):
    """Create Backup File for an operator: the file's bytes, and the line that says who took it."""
    data = build(include_users, passphrase=passphrase or None)
    said = [("with users" if include_users else ""), ("protected with a passphrase" if passphrase else "")]
    events.operator_action(actor, "Backup downloaded" + "".join(f" ({s})" for s in said if s))
    return data


def seal(header, content_bytes, passphrase=None):
    """The backup file of a header and content: authenticated with the cluster's key, or under a passphrase."""
    header = {k: v for k, v in header.items() if k not in ("protection", "key_id", MAC_FIELD, "kdf", "cipher")}
    if passphrase is None:
        key = cluster_key()
        header.update(protection=CLUSTER_KEY, key_id=key_id(key))
        header[MAC_FIELD] = mac(key, header, content_bytes)
        return archive({HEADER: _header_bytes(header), CONTENT: content_bytes})
    salt, nonce = os.urandom(16), os.urandom(12)
    header.update(
        protection=PASSPHRASE, kdf={**SCRYPT, "salt": _b64(salt)}, cipher={"name": CIPHER, "nonce": _b64(nonce)}
    )
    key = _derive(passphrase, header["kdf"], salt)
    sealed = AESGCM(key).encrypt(nonce, content_bytes, config.canonical(header))
    return archive({HEADER: _header_bytes(header), SEALED: sealed})


def _header_bytes(header):
    return json.dumps(header, sort_keys=True, indent=1).encode() + b"\n"


def archive(members):
    """A gzip tar of {name: bytes}, in that order, with no times or owners (the same input, the same bytes)."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(filename="", fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def filename(now=None):
    return f"flotilla-backup-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


# --- reading and checking a backup -------------------------------------------------


def read(path, max_bytes=None, running_version=None, passphrase=None):
    """The checked Backup in the file at path, or BackupError saying what is wrong with it.

    passphrase: what the operator typed with the file, for a backup made with one.
    running_version: what the cluster (or this unit) runs; a backup from a newer version is refused.
    """
    running_version = running_version or versions.cluster_version()
    max_bytes = max_bytes or settings.BACKUP_MAX_BYTES
    size = os.path.getsize(path)
    if size == 0:
        raise BackupError("This is not a backup file: it is empty")
    if size > max_bytes:
        raise BackupError(f"The file is {human_size(size)}, over the {human_size(max_bytes)} limit for a backup")
    with open(path, "rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            raise BackupError("This is not a backup file: a backup is the .tar.gz that Create Backup File downloads")
        raw.seek(0)
        members = _members(raw)
    header = _header(members)
    _check_version(header, running_version)
    data = _authenticated(header, members, passphrase)
    return Backup(header, _content(data, header))


def _members(raw):
    found = {}
    try:
        _read_through(raw, MAX_TAR_BYTES)
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            try:
                tar = tarfile.open(fileobj=gz, mode="r|")
            except tarfile.ReadError as e:
                raise BackupError(f"This is not a backup file: it is compressed but not a tar archive ({e})") from e
            with tar:
                for member in tar:
                    _check_member(member, found)
                    if member.size > MEMBER_LIMITS[member.name]:
                        raise BackupError(f"{member.name} is {human_size(member.size)}, over its limit")
                    found[member.name] = tar.extractfile(member).read()
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, OSError) as e:
        raise BackupError(f"The backup is truncated or damaged ({e}); use another copy") from e
    if HEADER not in found:
        raise BackupError(f"This is not a backup file: it has no {HEADER}")
    if CONTENT not in found and SEALED not in found:
        raise BackupError(f"This is not a backup file: it has no {CONTENT}")
    return found


def _read_through(raw, limit):
    """gzip checks its CRC and length only at the very end: read it through before anything reads the
    archive, so that a damaged byte is reported as damage, not as whatever it turned the archive into.
    Never more than limit bytes (and one) are decompressed: a few KiB of gzip can expand to GiB."""
    total = 0
    with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        while chunk := gz.read(min(CHUNK, limit - total + 1)):
            total += len(chunk)
            if total > limit:
                raise BackupError(
                    f"The backup is over {human_size(limit)} once decompressed: no backup is that large, "
                    "it is not one to restore"
                )
    raw.seek(0)


def _check_member(member, found):
    name = member.name
    try:
        check_tar_member(member, "backup")
    except UnsafeMember as e:
        if e.kind == "type":
            raise BackupError(
                f"The archive holds {short(name)}, which is not a regular file: a backup holds files only"
            ) from None
        if e.kind != "name":  # a name out of bounds is not one of ours: said below
            raise BackupError(
                f"The archive holds {short(name)}, a path outside itself: it is not a backup to trust"
            ) from None
    if name not in MEMBER_LIMITS:
        raise BackupError(
            f"The archive holds {short(name)}: a backup holds only {HEADER} and {CONTENT} "
            f"(or {SEALED}, when it is protected with a passphrase)"
        )
    if name in found:
        raise BackupError(f"The archive holds {short(name)} twice")
    if {name, *found} >= {CONTENT, SEALED}:
        raise BackupError(f"The archive holds both {CONTENT} and {SEALED}: it is not a backup to trust")


def _json(data, name, max_bytes):
    try:
        document = bounded.load(data, name, max_bytes)
    except bounded.BoundedJSONError as e:
        raise BackupError(f"{e}: the backup is damaged, or is not one to trust") from e
    if not isinstance(document, dict):
        raise BackupError(f"{name} is not a JSON object: the backup is damaged")
    return document


def _header(members):
    header = _json(members[HEADER], HEADER, MAX_HEADER_BYTES)
    if header.get("format") != FORMAT:
        raise BackupError("This is not a Flotilla backup file: its header names no backup format")
    version = header.get("format_version")
    if version == 1 and type(version) is int:
        raise BackupError(
            "This backup is of format version 1, made by an earlier software version: nothing in it proves "
            "it was not edited, so it is not restored. Create a new backup"
        )
    if type(version) is not int or version != FORMAT_VERSION:
        raise BackupError(
            f"Unknown backup format version {bounded.said(version)}: this software reads format {FORMAT_VERSION}; "
            "update the software to restore this backup"
        )
    checks = (
        ("created", str),
        ("origin", str),
        ("includes_users", bool),
        ("configuration_sha256", str),
        ("protection", str),
    )
    for key, kind in checks:
        if not isinstance(header.get(key), kind):
            raise BackupError(f"{HEADER} has no valid {key!r}: the backup is damaged")
    if header["origin"] not in ("cluster", "standalone"):
        raise BackupError(f"{HEADER} names an unknown origin {short(header['origin'])}: the backup is damaged")
    if header["protection"] not in (CLUSTER_KEY, PASSPHRASE):
        raise BackupError(f"{HEADER} names an unknown protection {short(header['protection'])}: the backup is damaged")
    return header


def _check_version(header, running_version):
    try:
        made_by = versions.parse_version(header.get("product_version"))
    except versions.BadVersion as e:
        raise BackupError(f"{HEADER} has no valid product version ({e})") from e
    if made_by > versions.parse_version(running_version):
        raise BackupError(
            f"The backup was made by product version {header['product_version']}, newer than the running "
            f"{running_version}: update the software first"
        )


def _authenticated(header, members, passphrase):
    """The exact bytes of content.json, once proven to be what was made with this cluster's key or the passphrase."""
    if header["protection"] == CLUSTER_KEY:
        if CONTENT not in members:
            raise BackupError(f"The header and the archive disagree: no {CONTENT}; the backup is damaged")
        key = cluster_key()
        claimed = header.get(MAC_FIELD)
        if header.get("key_id") != key_id(key):
            raise BackupError(ANOTHER_KEY)
        if not isinstance(claimed, str) or not HEX64.fullmatch(claimed):
            raise BackupError(f"{HEADER} has no valid {MAC_FIELD}: the backup is damaged")
        if not hmac.compare_digest(claimed, mac(key, header, members[CONTENT])):
            raise BackupError("Authentication failed: the backup was edited or damaged after it was made")
        return members[CONTENT]
    if SEALED not in members:
        raise BackupError(f"The header and the archive disagree: no {SEALED}; the backup is damaged")
    if not passphrase:
        raise BackupError(
            "This backup is protected with a passphrase: enter its passphrase with the file to restore it"
        )
    if len(passphrase) > MAX_PASSPHRASE:
        raise BackupError(f"A passphrase has at most {MAX_PASSPHRASE} characters")
    kdf, salt, nonce = _sealing(header)
    try:
        return AESGCM(_derive(passphrase, kdf, salt)).decrypt(nonce, members[SEALED], config.canonical(header))
    except InvalidTag:
        raise BackupError(
            "Wrong passphrase, or the backup was edited or damaged after it was made: nothing in it could be read"
        ) from None


def _sealing(header):
    """The scrypt parameters, salt and nonce a passphrase backup names, within what this software runs."""
    kdf, cipher = header.get("kdf"), header.get("cipher")
    if not isinstance(kdf, dict) or not isinstance(cipher, dict) or cipher.get("name") != CIPHER:
        raise BackupError(f"{HEADER} names no key derivation or cipher this software knows: the backup is damaged")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    affordable = type(n) is int and 1 < n <= SCRYPT_MAX_N and n & (n - 1) == 0
    if kdf.get("name") != "scrypt" or not affordable or (type(r), r, type(p), p) != (int, 8, int, 1):
        raise BackupError(
            f"The backup asks for a key derivation this software does not run (scrypt with n up to {SCRYPT_MAX_N}, "
            "r 8 and p 1): it is not one to trust"
        )
    try:
        salt = base64.b64decode(kdf.get("salt") or "", validate=True)
        nonce = base64.b64decode(cipher.get("nonce") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        salt = nonce = b""
    if not 16 <= len(salt) <= 64 or len(nonce) != 12:
        raise BackupError(f"{HEADER} has no valid salt or nonce: the backup is damaged")
    return kdf, salt, nonce


def _content(data, header):
    content = _json(data, CONTENT, MAX_CONTENT_BYTES)
    try:
        _check_content(content, header)
    except ValidationError as e:
        raise BackupError(f"The settings in the backup are not valid ({'; '.join(e.messages)})") from e
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        # Python's own messages may quote a value whole: the type and a clipped message only.
        raise BackupError(f"The settings in the backup are not valid ({type(e).__name__}: {clip(e, 120)})") from e
    return content


def _check_content(content, header):
    _clean(Cluster(**_fields(Cluster, content["cluster"])), "Cluster parameters")
    numbers = set()
    for entry in _list(content, "nodes"):
        # A unit may report no SSH user (membership.create_cluster), so a blank one is no damage.
        _clean(
            Node(**_fields(Node, entry, exclude=("facts",))), f"Node {bounded.said(entry.get('number'))}", ["ssh_user"]
        )
        agent.fingerprint(entry["host_key"])  # a key that is not "type base64" fails here
        if not isinstance(entry.get("facts", {}), dict):
            raise ValidationError(f"Node {entry['number']}: facts must be an object")
        numbers.add(entry["number"])
    for entry in _list(content, "interfaces"):
        interface = _clean(Interface(**_fields(Interface, entry)), f"Interface {bounded.said(entry.get('name'))}")
        _check_additional(interface)
        for side in entry["nodes"]:
            if side["number"] not in numbers:
                raise ValidationError(
                    f"Interface {interface.name}: node {bounded.said(side['number'])} is not in the backup"
                )
            if side.get("address"):
                _interface_address(side["address"], f"Interface {interface.name} of node {side['number']}")
    for entry in _list(content, "virtual_services"):
        vs = _service(entry)
        for rs in entry.get("real_servers", []):
            _clean(RealServer(**_fields(RealServer, rs)), f"Real server of {vs}", ["virtual_service"])
    if header["includes_users"] != ("users" in content):
        raise ValidationError("the header and the content disagree on whether users are included")
    for entry in content.get("users", []):
        _check_user(entry)
    if not isinstance(content.get("local_network") or {}, dict):
        raise ValidationError("local_network must be an object")


def _interface_address(value, label):
    """An address/prefix as the Network Setup writes it: a refusal quotes a short prefix of anything else."""
    if not isinstance(value, str) or len(value) > len("255.255.255.255/32"):
        raise ValidationError(f"{label}: {short(value)} is not an IPv4 address/prefix")
    canonical = network.parse_interface_address(value, label)
    if canonical != value:
        raise ValidationError(f"{label}: {short(value)} is not written as address/prefix (it would be {canonical})")
    return canonical


def _check_additional(interface):
    label = f"Interface {interface.name}: additional address"
    addresses = interface.additional_addresses
    if not isinstance(addresses, list) or len(addresses) > network.MAX_ADDITIONAL:
        raise ValidationError(f"{label}es must be a list of at most {network.MAX_ADDITIONAL}")
    for value in addresses:
        _interface_address(value, label)


def _check_user(entry):
    if not isinstance(entry, dict):
        raise ValidationError("a user must be an object")
    if not all(isinstance(entry.get(f), str) and entry[f] for f in ("username", "password")):
        raise ValidationError("a user has no username or password hash")
    if not all(isinstance(entry[f], str) for f in USER_TEXT if f in entry):
        raise ValidationError(f"user {short(entry['username'])}: its names and e-mail must be text")
    if not all(isinstance(entry[f], bool) for f in USER_FLAGS if f in entry):
        raise ValidationError(
            f"user {short(entry['username'])}: is_active, is_staff and is_superuser must be true or false"
        )


def _list(content, key):
    value = content[key]
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ValidationError(f"{key} must be a list of objects")
    return value


def _fields(model, entry, exclude=()):
    names = {f.name for f in model._meta.concrete_fields} - {"id", *exclude}
    return {k: v for k, v in entry.items() if k in names}


def _clean(instance, label, exclude=None):
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as e:
        raise ValidationError([f"{label}: {m}" for m in _messages(e)]) from e
    return instance


class _Quoted:
    """A refused value inside Django's validation message: its short prefix, whether the message says %s or %r."""

    def __init__(self, value):
        self.text = short(value)

    def __str__(self):
        return self.text

    __repr__ = __str__


def _messages(error):
    """The validation messages, each quoting a refused value (Django's "Value %(value)r is not a valid
    choice.") as a short prefix."""
    if hasattr(error, "error_dict"):
        errors = [e for errors in error.error_dict.values() for e in errors]
    else:
        errors = error.error_list
    said = []
    for e in errors:
        message = e.message
        if e.params:
            message = message % {k: _Quoted(v) for k, v in e.params.items()}
        said.append(str(message))
    return said


def _service(entry):
    return _clean(
        VirtualService(**_fields(VirtualService, entry)), f"Virtual Service {bounded.said(entry.get('name'))}"
    )


# --- compatibility -----------------------------------------------------------------


@dataclass(frozen=True)
class Incompatibility:
    setting: str
    problem: str
    conversion: str  # "" when it cannot be converted: then only Refuse is offered


@dataclass
class Report:
    origin: str
    target: str
    items: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    content: dict = field(default_factory=dict)  # what a restore writes, conversions made

    @property
    def convertible(self):
        return all(i.conversion for i in self.items)

    @property
    def digest(self):
        """Names this exact report: a choice made on one report is not applied to a different one."""
        return hashlib.sha256(config.canonical([[i.setting, i.problem, i.conversion] for i in self.items])).hexdigest()


def compatibility(backup, target=None):
    """What restoring this backup here would change that this unit cannot take as it is, and how it converts."""
    target = target or local_origin()
    report = Report(backup.origin, target, content=copy.deepcopy(backup.content))
    if backup.origin == "standalone" and target == "cluster":
        _into_cluster(report)
    elif backup.origin == "cluster" and target == "standalone":
        _into_standalone(report)
    if target == "cluster":
        report.content["virtual_services"] = [_for_cluster(e, report.items) for e in report.content["virtual_services"]]
    return report


def _keep_membership(report):
    """A restore across kinds keeps this unit's membership: joining and leaving happen on Cluster Control."""
    cluster = Cluster.get()
    report.content["cluster"].update(mode=cluster.mode, shared_address=cluster.shared_address)
    report.content["nodes"] = report.content["interfaces"] = report.content["local_network"] = None


def _into_cluster(report):
    if report.content["cluster"]["mode"] == Cluster.Mode.HA:
        report.items.append(
            Incompatibility(
                "HA and Clustering: HA Mode",
                "High Availability (HA) mode cannot be used in a cluster",
                "not restored: the cluster stays in Clustering mode",
            )
        )
    _keep_membership(report)
    report.notes.append(
        "The cluster keeps its nodes, its shared address and its Network Setup: a standalone unit's backup has "
        "none of these, and its own interface addresses are not the nodes' addresses."
    )


def _into_standalone(report):
    content = report.content
    nodes, interfaces = content["nodes"], content["interfaces"]
    report.items.append(
        Incompatibility(
            f"Cluster membership: shared address {content['cluster']['shared_address']}, {len(nodes)} node(s) "
            "with their pinned host keys",
            "this unit is not in a cluster; a unit becomes one with Create New Cluster or Add to Cluster",
            "not restored: this unit stays standalone",
        )
    )
    if interfaces:
        names = ", ".join(i["name"] for i in interfaces)
        report.items.append(
            Incompatibility(
                f"Cluster Network Setup ({names}): the nodes' addresses and the Use for Cluster checks/updates choices",
                "they configure a cluster's nodes, which a standalone unit has not",
                "not restored: this unit keeps its own Network Setup",
            )
        )
    _keep_membership(report)


def _for_cluster(entry, items):
    """The service converted, one step at a time, so that each conversion is shown with what it fixes."""
    vs = _service(entry)
    servers = [RealServer(virtual_service=vs, **_fields(RealServer, rs)) for rs in entry.get("real_servers", [])]
    label = f"Virtual Service {vs}"
    problems = virtual_services.cluster_violations(vs, servers)
    if not problems:
        return entry
    primary = virtual_services.primary_interface()
    steps = (
        ("layer", VirtualService.Layer.L7, "Layer 4 to Layer 7"),
        ("transparency", False, "Transparency turned off"),
        ("subnet_originating", True, "Subnet Originating Requests turned on"),
        ("interface", primary, f"moved from {vs.interface} to the primary interface {primary}"),
    )
    for name, value, said in steps:
        if getattr(vs, name) != value:
            setattr(vs, name, value)
            problems = _fixed(problems, virtual_services.cluster_violations(vs, servers), label, said, items)
    for rs in list(servers):
        trial = [s for s in servers if s is not rs]
        after = virtual_services.cluster_violations(vs, trial)
        if len(after) < len(problems):
            problems, servers = _fixed(problems, after, label, f"real server {rs} left out", items), trial
    items.extend(Incompatibility(label, p, "") for p in problems)
    kept = {(rs.address, rs.port) for rs in servers}
    converted = {k: getattr(vs, k) for k in ("layer", "transparency", "subnet_originating", "interface")}
    return {
        **entry,
        **converted,
        "real_servers": [rs for rs in entry.get("real_servers", []) if (rs["address"], rs["port"]) in kept],
    }


def _fixed(before, after, label, conversion, items):
    for problem in (Counter(before) - Counter(after)).elements():
        items.append(Incompatibility(label, problem, conversion))
    return after


# --- restoring ---------------------------------------------------------------------


def restore(backup, actor=None, convert=False, target=None):
    """Apply the backup in one transaction as a new generation; BackupError means nothing changed.

    ``convert`` is the operator's choice "Restore with these settings converted": without it a
    backup with incompatible settings is refused.
    """
    report = compatibility(backup, target)
    _check_no_update_under_way()
    if report.items and not convert:
        raise BackupError(f"The backup has {len(report.items)} setting(s) this unit cannot take as they are")
    if not report.convertible:
        raise BackupError("Some settings of the backup cannot be converted for this unit: it cannot be restored here")
    try:
        with transaction.atomic():
            generation = _apply(backup, report, actor)
    except DatabaseError as e:
        raise BackupError(f"The backup could not be applied ({clip(e, 300)})") from e
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        # read() checks every setting; should one still fail here, the transaction is undone all the same.
        raise BackupError(f"The backup could not be applied ({type(e).__name__}: {clip(e, 120)})") from e
    return generation, report


def _check_no_update_under_way():

    active = Rollout.active()
    if active is not None and active.kind == Rollout.Kind.UPDATE:
        raise BackupError(f"A restore cannot start now: {active.busy}")


def _apply(backup, report, actor):
    content = report.content
    with config.change(actor.user if actor else None) as done:
        before = config.render()
        cluster = done.cluster
        cluster.mode, cluster.shared_address = content["cluster"]["mode"], content["cluster"]["shared_address"]
        cluster.save(update_fields=["mode", "shared_address"])
        if content["nodes"] is not None:
            _apply_nodes(content["nodes"])
            _apply_interfaces(content["interfaces"])
        config.restore(content)  # Cluster Virtual ID, Node Drain Time and the Virtual Services
        users = _apply_users(content.get("users") or [])
        if report.target == "cluster" and (left := virtual_services.incompatible_settings()):
            raise BackupError(f"After the restore the cluster would refuse: {'; '.join(left)}")
        rendered = hashlib.sha256(config.canonical(config.render())).hexdigest()
        if report.origin == report.target and not report.items and rendered != backup.header["configuration_sha256"]:
            raise BackupError("The restore did not reproduce the backed-up configuration")
    generation = done.generation
    # What the database said before, not the newest generation: the two can differ (reconcile()).
    # Users are not in the configuration document: restoring them is a change too.
    report.changed = config.render() != before or bool(users)
    _record(backup, report, generation, users, actor)
    if content.get("local_network") is not None and settings.FLOTILLA_ROLE == "node":
        local = content["local_network"]
        transaction.on_commit(lambda: agent.write_json(LOCAL_NETWORK, local))
    if report.target == "cluster" and report.changed:
        restart_nodes_one_at_a_time(actor.user if actor else None)
    return generation


def _apply_nodes(entries):
    wanted = {e["number"]: e for e in entries}
    Node.objects.exclude(number__in=wanted).delete()
    existing = {n.number: n for n in Node.objects.select_for_update()}
    # Addresses are unique: nodes that swap addresses would collide half way, so those that move
    # are parked first on an address of 0.0.0.0/8 ("this network"), which no node can have.
    for node in existing.values():
        if node.address != wanted[node.number]["address"]:
            Node.objects.filter(pk=node.pk).update(
                address=f"0.{node.pk >> 16 & 255}.{node.pk >> 8 & 255}.{node.pk & 255}"
            )
    now = clock.now()  # a node enabled or disabled now: its warm-up or drain counts from here
    for number, entry in wanted.items():
        values = _fields(Node, entry, exclude=("facts",))
        node = existing.get(number)
        if node is None:
            Node.objects.create(**values, facts=entry.get("facts", {}), enabled_at=now if entry["enabled"] else None)
            continue
        if node.enabled != entry["enabled"] and entry["enabled"]:
            values.update(enabled_at=now, disabled_at=None)
        elif node.enabled != entry["enabled"]:
            values.update(disabled_at=now)
        if node.host_key != entry["host_key"]:
            values["facts"] = entry.get("facts", {})  # another machine: its live facts are not this one's
        Node.objects.filter(pk=node.pk).update(**values)


def _apply_interfaces(entries):
    Interface.objects.all().delete()
    nodes = {n.number: n for n in Node.objects.all()}
    for entry in entries:
        interface = Interface.objects.create(**_fields(Interface, entry))
        NodeInterface.objects.bulk_create(
            NodeInterface(
                node=nodes[side["number"]],
                interface=interface,
                address=side.get("address", ""),
                use_for_default_gateway=side.get("use_for_default_gateway", False),
            )
            for side in entry["nodes"]
        )


def _apply_users(entries):
    """Users of the backup are created or brought back to what it says; others are left alone."""
    model = get_user_model()
    for entry in entries:
        model.objects.update_or_create(
            username=entry["username"], defaults={f: entry[f] for f in USER_FIELDS[1:] if f in entry}
        )
    return [e["username"] for e in entries]


def _record(backup, report, generation, users, actor):
    header = backup.header
    text = (
        f"Configuration restored from a {header['origin']} backup of {header['created']} "
        f"(product version {header['product_version']}) "
        + (f"as generation {generation.number}" if report.changed else "changed nothing: it matches what is in force")
    )
    if report.items:
        text += f", {len(report.items)} setting(s) converted"
    if users:
        text += f", users restored: {', '.join(users)}"
    if actor is not None:
        events.operator_action(actor, text)
    else:
        events.record(text)


def restart_nodes_one_at_a_time(user):
    """The seed: "When restoring, the individual LoadMasters are rebooted, one at a time"."""

    rollout.start_restore_reboots(user)


# --- kept files: automatic backups and uploads awaiting the operator's choice ------------------


def backup_dir():
    return settings.VAR_DIR / "backups"


def write_private(path, data):
    """Written whole and renamed into place, readable by this user only (it may hold password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, data, 0o600)


def save_scheduled(now=None):
    """An automatic backup into VAR_DIR/backups; only the newest BACKUP_KEEP are kept."""
    now = now or datetime.now(UTC)
    path = backup_dir() / filename(now=now)
    write_private(path, build(settings.BACKUP_INCLUDE_USERS, now))
    for old in saved_backups()[settings.BACKUP_KEEP :]:
        (backup_dir() / old["name"]).unlink(missing_ok=True)
    return path


def saved_backups():
    """The automatic backups, newest first (their names sort by time)."""
    if not backup_dir().is_dir():
        return []
    paths = sorted((p for p in backup_dir().iterdir() if SAVED_NAME.fullmatch(p.name)), reverse=True)
    return [
        {"name": p.name, "size": p.stat().st_size, "time": datetime.fromtimestamp(p.stat().st_mtime, UTC)}
        for p in paths
    ]


def keep_pending(found):
    """Keep a checked backup until the operator chooses; returns the token that names it.

    It is kept authenticated with the cluster's key, whatever protected the upload: the choice
    must not need the passphrase again, and the kept file must not be open to edits meanwhile.
    """
    forget_stale_pending()
    token = secrets.token_hex(32)
    write_private(pending_path(token), seal(found.header, config.canonical(found.content)))
    return token


def pending_path(token):
    if not re.fullmatch(r"[0-9a-f]{64}", token or ""):
        raise BackupError("That uploaded backup is no longer here: upload it again")
    return backup_dir() / "pending" / f"{token}.tar.gz"


def forget_stale_pending():
    folder = backup_dir() / "pending"
    for path in folder.glob("*.tar.gz") if folder.is_dir() else []:
        if path.stat().st_mtime < time.time() - PENDING_TTL:
            path.unlink(missing_ok=True)

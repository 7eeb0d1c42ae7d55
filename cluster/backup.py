"""Backup/Restore of the configuration: the backup file, its checks, the compatibility report, the restore.

A backup is a gzip-compressed tar holding exactly two regular files, ``header.json`` then
``content.json``. A tar rather than one JSON document: it is the same container as a firmware
patch (the same member checks apply), ``tar xzf`` lets an operator look inside, and later members
(certificates, say) fit without base64 inside JSON. ``content.json`` is canonical JSON (sorted
keys, no spaces); the header's ``sha256`` covers the canonical header without that field, a
newline, and the exact bytes of ``content.json``, so neither the origin nor the settings can be
changed unnoticed. Every refusal is a ``BackupError`` whose message is for the operator; nothing is
written before the whole file has been read and checked.
"""

import copy
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from cluster import config, events, history, network, virtual_services
from cluster.models import Cluster, Event, Interface, Node, NodeInterface, RealServer, VirtualService
from firmware.patch import PatchError, human_size, parse_version
from nodes import agent

FORMAT = "flotilla-backup"
FORMAT_VERSION = 1
HEADER, CONTENT = "header.json", "content.json"
GZIP_MAGIC = b"\x1f\x8b"
MAX_HEADER_BYTES = 64 * 1024
EXPANSION = 16  # content.json may be this many times the file's limit once decompressed, no more
CHUNK = 2**20
LOCAL_NETWORK = "local_network.json"  # a standalone unit's own Network Setup (nodes/network_views.py)
USER_FIELDS = ("username", "password", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")
SAVED_NAME = re.compile(r"flotilla-backup-\d{8}T\d{6}Z\.tar\.gz")
PENDING_TTL = 3600


class BackupError(Exception):
    """A backup refused, or a restore that did not happen; nothing was changed."""


@dataclass(frozen=True)
class Backup:
    header: dict
    content: dict

    @property
    def origin(self):
        return self.header["origin"]


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


NODE_FIELDS = ("number", "address", "interface_address", "ssh_port", "ssh_user", "host_key", "is_admin", "enabled")
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


def build(include_users=False, now=None):
    """The backup file's bytes (a configuration is small: kilobytes, so it is built in memory)."""
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
        "product_version": agent.VERSION,
        "created": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "origin": local_origin(),
        "includes_users": include_users,
        # What config.render() gave: a restore into the same kind of unit must give it again.
        "configuration_sha256": hashlib.sha256(rendered).hexdigest(),
    }
    header["sha256"] = checksum(header, content)
    return archive({HEADER: json.dumps(header, sort_keys=True, indent=1).encode() + b"\n", CONTENT: content})


def checksum(header, content_bytes):
    fields = {k: v for k, v in header.items() if k != "sha256"}
    return hashlib.sha256(config.canonical(fields) + b"\n" + content_bytes).hexdigest()


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


def read(path, max_bytes=None, running_version=agent.VERSION):
    """The checked Backup in the file at path, or BackupError saying what is wrong with it."""
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
        members = _members(raw, max_bytes * EXPANSION)
    header = _header(members)
    _check_version(header, running_version)
    if checksum(header, members[CONTENT]) != header["sha256"]:
        raise BackupError("Checksum mismatch: the backup was edited or damaged after it was made")
    return Backup(header, _content(members[CONTENT], header))


def _members(raw, budget):
    found = {}
    try:
        _read_through(raw, budget + MAX_HEADER_BYTES + CHUNK)
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            try:
                tar = tarfile.open(fileobj=gz, mode="r|")
            except tarfile.ReadError as e:
                raise BackupError(f"This is not a backup file: it is compressed but not a tar archive ({e})") from e
            with tar:
                for member in tar:
                    _check_member(member, found)
                    limit = MAX_HEADER_BYTES if member.name == HEADER else budget
                    if member.size > limit:
                        raise BackupError(f"{member.name} is {human_size(member.size)}, over its limit")
                    found[member.name] = tar.extractfile(member).read()
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, OSError) as e:
        raise BackupError(f"The backup is truncated or damaged ({e}); use another copy") from e
    for name in (HEADER, CONTENT):
        if name not in found:
            raise BackupError(f"This is not a backup file: it has no {name}")
    return found


def _read_through(raw, limit):
    """gzip checks its CRC and length only at the very end: read it through before anything reads the
    archive, so that a damaged byte is reported as damage, not as whatever it turned the archive into."""
    total = 0
    with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        while chunk := gz.read(CHUNK):
            total += len(chunk)
            if total > limit:
                raise BackupError(f"The backup is over {human_size(limit)} once decompressed: it is not a backup")
    raw.seek(0)


def _check_member(member, found):
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or member.issym() or member.islnk():
        raise BackupError(f"The archive holds {name!r}, a path outside itself: it is not a backup to trust")
    if not member.isreg():
        raise BackupError(f"The archive holds {name!r}, which is not a regular file: a backup holds files only")
    if name not in (HEADER, CONTENT):
        raise BackupError(f"The archive holds {name!r}: a backup holds only {HEADER} and {CONTENT}")
    if name in found:
        raise BackupError(f"The archive holds {name!r} twice")


def _json(data, name):
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise BackupError(f"{name} is not valid JSON ({e}): the backup is damaged") from e
    if not isinstance(document, dict):
        raise BackupError(f"{name} is not a JSON object: the backup is damaged")
    return document


def _header(members):
    header = _json(members[HEADER], HEADER)
    if header.get("format") != FORMAT:
        raise BackupError("This is not a Flotilla backup file: its header names no backup format")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BackupError(
            f"Unknown backup format version {version!r}: this software reads format {FORMAT_VERSION}; "
            "update the software to restore this backup"
        )
    checks = (
        ("created", str),
        ("origin", str),
        ("includes_users", bool),
        ("sha256", str),
        ("configuration_sha256", str),
    )
    for key, kind in checks:
        if not isinstance(header.get(key), kind):
            raise BackupError(f"{HEADER} has no valid {key!r}: the backup is damaged")
    if header["origin"] not in ("cluster", "standalone"):
        raise BackupError(f"{HEADER} names an unknown origin {header['origin']!r}: the backup is damaged")
    return header


def _check_version(header, running_version):
    try:
        made_by = parse_version(header.get("product_version"))
    except PatchError as e:
        raise BackupError(f"{HEADER} has no valid product version ({e})") from e
    if made_by > parse_version(running_version):
        raise BackupError(
            f"The backup was made by product version {header['product_version']}, newer than the running "
            f"{running_version}: update the software first"
        )


def _content(data, header):
    content = _json(data, CONTENT)
    try:
        _check_content(content, header)
    except (ValidationError, KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        detail = "; ".join(e.messages) if isinstance(e, ValidationError) else f"{type(e).__name__}: {e}"
        raise BackupError(f"The settings in the backup are not valid ({detail})") from e
    return content


def _check_content(content, header):
    _clean(Cluster(**_fields(Cluster, content["cluster"])), "Cluster parameters")
    numbers = set()
    for entry in _list(content, "nodes"):
        # A unit may report no SSH user (membership.create_cluster), so a blank one is no damage.
        _clean(Node(**_fields(Node, entry, exclude=("facts",))), f"Node {entry.get('number')}", ["ssh_user"])
        agent.fingerprint(entry["host_key"])  # a key that is not "type base64" fails here
        if not isinstance(entry.get("facts", {}), dict):
            raise ValidationError(f"Node {entry['number']}: facts must be an object")
        numbers.add(entry["number"])
    for entry in _list(content, "interfaces"):
        _clean(Interface(**_fields(Interface, entry)), f"Interface {entry.get('name')}")
        for side in entry["nodes"]:
            if side["number"] not in numbers:
                raise ValidationError(f"Interface {entry['name']}: node {side['number']} is not in the backup")
            if side.get("address"):
                network.parse_interface_address(side["address"], f"Interface {entry['name']} of node {side['number']}")
    for entry in _list(content, "virtual_services"):
        vs = _service(entry)
        for rs in entry.get("real_servers", []):
            _clean(RealServer(**_fields(RealServer, rs)), f"Real server of {vs}", ["virtual_service"])
    if header["includes_users"] != ("users" in content):
        raise ValidationError("the header and the content disagree on whether users are included")
    for entry in content.get("users", []):
        if not all(isinstance(entry.get(f), str) and entry[f] for f in ("username", "password")):
            raise ValidationError("a user has no username or password hash")
    if not isinstance(content.get("local_network") or {}, dict):
        raise ValidationError("local_network must be an object")


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
        raise ValidationError([f"{label}: {m}" for m in e.messages]) from e
    return instance


def _service(entry):
    return _clean(VirtualService(**_fields(VirtualService, entry)), f"Virtual Service {entry.get('name')!r}")


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


def restore(backup, user=None, request=None, convert=False, target=None):
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
            generation = _apply(backup, report, user, request)
    except DatabaseError as e:
        raise BackupError(f"The backup could not be applied ({e})") from e
    return generation, report


def _check_no_update_under_way():
    from firmware.models import Rollout

    active = Rollout.active()
    if active is not None and active.kind == Rollout.Kind.UPDATE:
        raise BackupError(f"A restore cannot start now: {active.busy}")


def _apply(backup, report, user, request):
    content = report.content
    cluster = Cluster.objects.select_for_update().get_or_create(pk=1)[0]
    cluster.mode, cluster.shared_address = content["cluster"]["mode"], content["cluster"]["shared_address"]
    cluster.save(update_fields=["mode", "shared_address"])
    if content["nodes"] is not None:
        _apply_nodes(content["nodes"])
        _apply_interfaces(content["interfaces"])
    history.restore(content)  # Cluster Virtual ID, Node Drain Time and the Virtual Services
    users = _apply_users(content.get("users") or [])
    if report.target == "cluster" and (left := virtual_services.incompatible_settings()):
        raise BackupError(f"After the restore the cluster would refuse: {'; '.join(left)}")
    rendered = hashlib.sha256(config.canonical(config.render())).hexdigest()
    if report.origin == report.target and not report.items and rendered != backup.header["configuration_sha256"]:
        raise BackupError("The restore did not reproduce the backed-up configuration")
    generation = config.commit_generation(user)
    _record(backup, report, generation, users, user, request)
    if content.get("local_network") is not None and settings.FLOTILLA_ROLE == "node":
        local = content["local_network"]
        transaction.on_commit(lambda: agent.write_json(LOCAL_NETWORK, local))
    if report.target == "cluster":
        restart_nodes_one_at_a_time(user)
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
    now = timezone.now()
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


def _record(backup, report, generation, users, user, request):
    header = backup.header
    text = (
        f"Configuration restored from a {header['origin']} backup of {header['created']} "
        f"(product version {header['product_version']}) as generation {generation.number}"
    )
    if report.items:
        text += f", {len(report.items)} setting(s) converted"
    if users:
        text += f", users restored: {', '.join(users)}"
    if request is not None:
        events.operator_action(request, text)
    else:
        Event.objects.create(message=text, user=user if user and user.is_authenticated else None)


def restart_nodes_one_at_a_time(user):
    """The seed: "When restoring, the individual LoadMasters are rebooted, one at a time"."""
    from firmware import rollout  # the rolling reboot of software updates, which imports this app

    rollout.start_restore_reboots(user)


# --- kept files: automatic backups and uploads awaiting the operator's choice ------------------


def backup_dir():
    return settings.VAR_DIR / "backups"


def write_private(path, data):
    """Written whole and renamed into place, readable by this user only (it may hold password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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


def pending_path(token):
    if not re.fullmatch(r"[0-9a-f]{64}", token or ""):
        raise BackupError("That uploaded backup is no longer here: upload it again")
    return backup_dir() / "pending" / f"{token}.tar.gz"


def forget_stale_pending():
    folder = backup_dir() / "pending"
    for path in folder.glob("*.tar.gz") if folder.is_dir() else []:
        if path.stat().st_mtime < time.time() - PENDING_TTL:
            path.unlink(missing_ok=True)

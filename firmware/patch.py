"""Firmware patches: the format, the builder and the verifier (see FORMAT.md).

Standard library and ``cryptography`` only, no Django (``wui.bounded`` and
``wui.text`` are standard library too): the node agent is to reuse the
verifier. Every refusal is a ``PatchError`` whose message tells the operator
what is wrong and, where it helps, what to do; a value from the file is quoted
as a short prefix only.

Archives are read as streams (``tarfile`` mode ``r|``) in chunks: a patch may
be hundreds of MiB and is never held in memory; only manifest.json and
manifest.sig are read whole, and both have a small size cap. A patch costs
little to refuse: the manifest and its signature come first and are checked
before any payload byte is decompressed, and from then on the stream may not
decompress to more than the manifest declares.
"""

import base64
import binascii
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cluster.rollout import versions
from nodes.agent.formats import UnsafeMember, check_member_name, check_tar_member
from wui import bounded
from wui.text import human_size, short

FORMAT = 1
NAME = "flotilla"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PAYLOAD = "payload/"
CHUNK = 2**20
MAX_MANIFEST_BYTES = 8 * 2**20  # read whole, so capped: about 60,000 files
MAX_SIGNATURE_BYTES = 1024
GZIP_MAGIC = b"\x1f\x8b"
# Tar's own bytes around the members: headers, PAX records (a long path), padding to 512 bytes,
# the end-of-archive blocks and record padding, and tarfile's read-ahead of one record.
HEAD_ROOM = 64 * 1024
MEMBER_ROOM = 4 * 1024
# Three numbers, no leading zeros: "1.01.0" would otherwise equal "1.1.0".
SHA256_RE = re.compile(r"[0-9a-f]{64}")


class PatchError(Exception):
    """A patch refused; the message is for the operator."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    created: str
    files: dict  # "payload/<path>" -> FileEntry
    key: str  # base64 public key that signed the manifest
    sha256: str = ""  # of the whole patch file, once verified
    size: int = 0  # of the whole patch file, once verified

    @property
    def file_count(self):
        return len(self.files)


# Versions and keys


def parse_version(text):
    try:
        return versions.parse_version(text)
    except versions.BadVersion as exc:
        raise PatchError(str(exc)) from None


def check_newer(version, running_version, allow_downgrade=False):
    if parse_version(version) <= parse_version(running_version) and not allow_downgrade:
        raise PatchError(
            f"version {version} is not newer than the running {running_version}; "
            "confirm a downgrade to install it anyway"
        )


def public_key_text(private_key):
    """The base64 of the raw 32-byte public key: what FIRMWARE_TRUSTED_KEYS holds."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_trusted_keys(encoded):
    """{base64 text: public key}; a malformed entry is a configuration error and is said so."""
    keys = {}
    for text in encoded:
        try:
            raw = base64.b64decode(text, validate=True)
            keys[base64.b64encode(raw).decode()] = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError) as e:
            raise PatchError(
                f"the trusted key {short(text)} is not the base64 of a raw 32-byte ed25519 public key "
                "(check FIRMWARE_TRUSTED_KEYS)"
            ) from e
    if not keys:
        raise PatchError(
            "no firmware signing key is trusted: put the public key printed by "
            "'manage.py build_firmware --new-key' in FIRMWARE_TRUSTED_KEYS"
        )
    return keys


# Member checks, shared by verify() and extract()


def check_name(name):
    """Refuse a path that could land outside the patch, or that a patch does not hold."""
    try:
        check_member_name(name, "patch")
    except UnsafeMember as e:
        raise PatchError(str(e)) from None
    if name not in (MANIFEST, SIGNATURE) and not name.startswith(PAYLOAD):
        raise PatchError(
            f"unexpected member {short(name)}: a patch holds only {MANIFEST}, {SIGNATURE} and {PAYLOAD} files"
        )


def check_member(member):
    check_name(member.name)
    try:
        check_tar_member(member, "patch")
    except UnsafeMember as e:
        raise PatchError(str(e)) from None


# Reading an archive


class _HashingReader:
    """The raw file, hashed as gzip reads it: the patch's sha256 costs no second pass."""

    def __init__(self, raw):
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size=-1):
        data = self.raw.read(size)
        self.sha256.update(data)
        return data


class _Decompressed:
    """gzip over the raw file; a damaged stream is said as such, not as a zlib error.

    It never decompresses more than ``limit`` bytes (and one more, to know): a few KiB of gzip
    can expand to GiB, and every byte of it would cost time before anything else is refused.
    """

    def __init__(self, raw):
        self.source = _HashingReader(raw)
        self.gz = gzip.GzipFile(fileobj=self.source, mode="rb")
        self.total = 0
        # Until the manifest is checked, only it and its signature may come.
        self.limit = MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + HEAD_ROOM
        self.over = (
            f"the patch does not begin with {MANIFEST} and {SIGNATURE}: build patches with 'manage.py build_firmware'"
        )

    def expect(self, files, more=0):
        """From here on, only the listed files, ``more`` bytes and tar's own bytes may come."""
        listed = sum(e.size + MEMBER_ROOM + 2 * len(n) for n, e in files.items())
        self.limit = self.total + HEAD_ROOM + listed + more
        self.over = f"the patch holds more than its {MANIFEST} declares: do not install it"

    def read(self, size=-1):
        if self.limit is not None:
            room = self.limit - self.total + 1
            size = room if size < 0 else min(size, room)
        try:
            data = self.gz.read(size)
        except (EOFError, zlib.error, OSError) as e:
            raise _damaged(e) from e
        self.total += len(data)
        if self.limit is not None and self.total > self.limit:
            raise PatchError(self.over)
        return data

    def finish(self):
        """Read to the end (gzip checks its CRC and length only there); the file's sha256."""
        while self.read(CHUNK):
            pass
        while self.source.read(CHUNK):
            pass
        return self.source.sha256.hexdigest()


def _damaged(error):
    return PatchError(f"the patch is truncated or corrupt ({error}); get a fresh copy of the file")


def _check_magic(raw):
    if raw.read(2) != GZIP_MAGIC:
        raise PatchError(
            "not a firmware patch: the file is not gzip-compressed "
            "(a patch is the .tar.gz that 'manage.py build_firmware' makes)"
        )
    raw.seek(0)


def _open_tar(stream):
    try:
        return tarfile.open(fileobj=stream, mode="r|")
    except tarfile.ReadError as e:
        raise PatchError(f"not a firmware patch: the file is gzip-compressed but is not a tar archive ({e})") from e


@contextmanager
def _reading(path):
    """(members, tar, stream) over the patch at path, as a stream; damage becomes a PatchError.

    members is one iterator over the archive: the manifest's two members are taken from it first,
    then the payload.
    """
    with open(path, "rb") as raw:
        _check_magic(raw)
        stream = _Decompressed(raw)
        try:
            with _open_tar(stream) as tar:
                yield iter(tar), tar, stream
        except tarfile.TarError as e:
            raise _damaged(e) from e
        finally:
            stream.gz.close()


# verify()


def verify(path, trusted_keys, max_bytes, running_version, allow_downgrade=False):
    """The verified Manifest of the patch at path (with its sha256 and size), or PatchError.

    The manifest and its signature are checked before any payload byte is read: a patch that is
    not from a trusted key costs a few KiB of decompression, whatever it carries.
    """
    size = _check_size(path, max_bytes)
    keys = load_trusted_keys(trusted_keys)
    with _reading(path) as (members, tar, stream):
        data, signature = _head(members, tar)
        manifest = _signed_manifest(data, signature, keys)
        check_newer(manifest.version, running_version, allow_downgrade)
        stream.expect(manifest.files)
        found = _scan_payload(members, tar, manifest.files)
        digest = stream.finish()
    _check_payload(manifest.files, found)
    return replace(manifest, sha256=digest, size=size)


def _check_size(path, max_bytes):
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise PatchError(f"cannot read the patch: {e.strerror}") from e
    if size > max_bytes:
        raise PatchError(f"the file is {human_size(size)}, over the {human_size(max_bytes)} limit for a firmware patch")
    if size == 0:
        raise PatchError("not a firmware patch: the file is empty")
    return size


def _head(members, tar):
    """The bytes of manifest.json and manifest.sig, which the format puts first, in that order."""
    first = next(members, None)
    if first is not None:
        check_member(first)
    if first is None or first.name != MANIFEST:
        raise PatchError(
            f"the patch has no {MANIFEST} as its first member; build patches with 'manage.py build_firmware'"
        )
    data = _read_small(first, tar.extractfile(first), MAX_MANIFEST_BYTES)
    second = next(members, None)
    if second is not None:
        check_member(second)
        if second.name == MANIFEST:
            raise PatchError(f"member {short(MANIFEST)} appears twice in the patch")
    if second is None or second.name != SIGNATURE:
        raise PatchError(f"the patch has no {SIGNATURE}: it is not signed")
    return data, _read_small(second, tar.extractfile(second), MAX_SIGNATURE_BYTES)


def _scan_payload(members, tar, listed):
    """Hash each payload file, refusing one the manifest does not list, or of another size, before reading it."""
    found = {}
    for member in members:
        check_member(member)
        name = member.name
        if name in found or name in (MANIFEST, SIGNATURE):
            raise PatchError(f"member {short(name)} appears twice in the patch")
        entry = listed.get(name)
        if entry is None:
            raise PatchError(f"{short(name)} is in the patch but not listed in the manifest")
        _check_size_of(name, member.size, entry)
        found[name] = _copy(tar.extractfile(member))
        _check_entry(name, found[name], entry)
    return found


def _read_small(member, f, limit):
    if member.size > limit:
        raise PatchError(f"{member.name} is {human_size(member.size)}, more than the {human_size(limit)} it may be")
    return f.read()


def _copy(f, out=None):
    """FileEntry of what f holds, written to out on the way if given."""
    digest, size = hashlib.sha256(), 0
    while chunk := f.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if out is not None:
            out.write(chunk)
    return FileEntry(digest.hexdigest(), size)


# The manifest


def _signed_manifest(data, signature, keys):
    document = parse_manifest(data)
    _check_signature(document, data, signature, keys)
    return manifest_from(document)


def parse_manifest(data):
    """The manifest document, checked for its format before anything else is read from it."""
    try:
        document = bounded.load(data, MANIFEST, MAX_MANIFEST_BYTES)
    except bounded.BoundedJSONError as e:
        raise PatchError(str(e)) from e
    if not isinstance(document, dict):
        raise PatchError(f"{MANIFEST} is not a JSON object")
    fmt = document.get("format")
    if type(fmt) is not int or fmt != FORMAT:
        raise PatchError(
            f"unknown patch format {bounded.said(fmt)}: this software reads format {FORMAT} only; "
            "install a release that understands the newer format first"
        )
    return document


def _check_signature(document, data, signature, keys):
    key = document.get("key")
    if not isinstance(key, str) or not key:
        raise PatchError(f"{MANIFEST} does not say which key signed it")
    if key not in keys:
        # A well-formed key is quoted whole: the operator compares it with FIRMWARE_TRUSTED_KEYS.
        said = key if re.fullmatch(r"[A-Za-z0-9+/]{43}=", key) else short(key)
        raise PatchError(f"signed by an unknown key {said}: it is not one of the trusted firmware keys")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        keys[key].verify(raw, data)
    except (binascii.Error, InvalidSignature) as e:
        raise PatchError(
            f"bad signature: {MANIFEST} was changed after it was signed, or {SIGNATURE} is damaged; "
            "do not install this patch"
        ) from e


def manifest_from(document):
    if document.get("name") != NAME:
        raise PatchError(f"this patch is for {bounded.said(document.get('name'))}, not {NAME}")
    parse_version(document.get("version"))
    if not isinstance(document.get("created"), str):
        raise PatchError(f"{MANIFEST} has no creation time")
    return Manifest(
        name=NAME,
        version=document["version"],
        created=document["created"],
        files=_entries(document.get("files")),
        key=document.get("key", ""),
    )


def _entries(files):
    if not isinstance(files, dict) or not files:
        raise PatchError(f"{MANIFEST} lists no payload files")
    entries = {}
    for name, entry in files.items():
        check_name(name)
        if not name.startswith(PAYLOAD) or not _well_formed(entry):
            raise PatchError(f"{MANIFEST} has a malformed entry for {short(name)}")
        entries[name] = FileEntry(entry["sha256"], entry["size"])
    return entries


def _well_formed(entry):
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and SHA256_RE.fullmatch(entry["sha256"]) is not None
        and type(entry.get("size")) is int
        and entry["size"] >= 0
    )


def _check_size_of(name, size, entry):
    if size != entry.size:
        raise PatchError(f"size mismatch for {name}: {size} bytes, the manifest says {entry.size}")


def _check_entry(name, found, entry):
    _check_size_of(name, found.size, entry)
    if found.sha256 != entry.sha256:
        raise PatchError(f"checksum mismatch for {name}: the file was changed after the patch was signed")


def _check_payload(listed, found):
    if missing := sorted(listed.keys() - found.keys()):
        raise PatchError(f"{missing[0]} is listed in the manifest but missing from the patch")
    if unlisted := sorted(found.keys() - listed.keys()):
        raise PatchError(f"{short(unlisted[0])} is in the patch but not listed in the manifest")
    for name in sorted(listed):
        _check_entry(name, found[name], listed[name])


def read_manifest(path):
    """The manifest of a patch that verify() accepted earlier, for display only: nothing is checked again."""
    with _reading(path) as (members, tar, _stream):
        first = next(members, None)
        if first is not None and first.name == MANIFEST and first.isreg():
            return manifest_from(parse_manifest(_read_small(first, tar.extractfile(first), MAX_MANIFEST_BYTES)))
    raise PatchError(f"the patch has no {MANIFEST}")


# extract()


def extract(path, dest_dir, manifest=None):
    """Write the payload of a verified patch under dest_dir (payload/a/b -> dest_dir/a/b).

    Paths and member types are checked again. Pass the Manifest that verify()
    returned to have every file's size and checksum checked again as it is
    written, in case the file changed since (a file not listed, or of another
    size, is refused before anything of it is written, and the stream may not
    hold more than the manifest declares). On a refusal dest_dir may hold
    part of the payload: extract into a fresh directory and discard it then.
    Returns the payload names written.
    """
    dest = Path(dest_dir).resolve()
    written = {}
    with _reading(path) as (members, tar, stream):
        if manifest is None:
            stream.limit = None  # the caller has checked nothing: no size to hold it to
        else:
            stream.expect(manifest.files, MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES)
        for member in members:
            check_member(member)
            if not member.name.startswith(PAYLOAD):
                continue
            if manifest is not None:
                if member.name not in manifest.files:
                    raise PatchError(f"{short(member.name)} is in the patch but not listed in the manifest")
                _check_size_of(member.name, member.size, manifest.files[member.name])
            written[member.name] = _write(dest, member, tar.extractfile(member))
    if manifest is not None:
        _check_payload(manifest.files, written)
    return sorted(written)


def _write(dest, member, f):
    target = dest.joinpath(*member.name.removeprefix(PAYLOAD).split("/"))
    # A directory that already exists in dest may be a symlink pointing elsewhere.
    if not target.parent.resolve().is_relative_to(dest):
        raise PatchError(f"{member.name} would be written outside {dest}")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o755 if member.mode & 0o111 else 0o644
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, mode)  # the umask must not change what the patch says
        return _copy(f, out)


# build()


def build(out_path, payload_dir, version, private_key, created=None):
    """Build a signed patch of every file under payload_dir; the same inputs give the same bytes."""
    return build_files(out_path, collect(payload_dir), version, private_key, created)


def collect(payload_dir):
    """{relative path: source path} of the regular files under payload_dir; links are refused."""
    root = Path(payload_dir)
    if not root.is_dir():
        raise PatchError(f"{root} is not a directory")
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            _check_source(Path(dirpath, name))
        for name in filenames:
            files[Path(dirpath, name).relative_to(root).as_posix()] = Path(dirpath, name)
    if not files:
        raise PatchError(f"{root} holds no files to put in a patch")
    return files


def _check_source(path):
    if path.is_symlink():
        raise PatchError(f"{path} is a symbolic link; a patch carries regular files only")
    if not (path.is_dir() or path.is_file()):
        raise PatchError(f"{path} is not a regular file")


def build_files(out_path, files, version, private_key, created=None):
    """Build a signed patch of files ({relative path: source path}); returns its Manifest."""
    parse_version(version)
    sources = {PAYLOAD + rel: Path(src) for rel, src in sorted(files.items())}
    for name in sources:
        check_name(name)
    data = _manifest_bytes(sources, version, private_key, created)
    signature = base64.b64encode(private_key.sign(data))
    _write_archive(Path(out_path), data, signature, sources)
    manifest = manifest_from(json.loads(data))
    with open(out_path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return replace(manifest, sha256=digest, size=os.path.getsize(out_path))


def _manifest_bytes(sources, version, private_key, created):
    entries = {}
    for name, src in sources.items():
        with open(src, "rb") as f:
            entry = _copy(f)
        entries[name] = {"sha256": entry.sha256, "size": entry.size}
    document = {
        "format": FORMAT,
        "name": NAME,
        "version": version,
        "created": created or datetime.now(UTC).isoformat(timespec="seconds"),
        "key": public_key_text(private_key),
        "files": entries,
    }
    return (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()


def _write_archive(out, manifest, signature, sources):
    """Write to a temporary name and rename: a reader never sees half a patch."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        # filename="" and mtime=0: the gzip header would otherwise carry both and vary.
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
            _write_members(gz, manifest, signature, sources)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_members(gz, manifest, signature, sources):
    with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST, manifest), (SIGNATURE, signature)):
            tar.addfile(_tarinfo(name, len(data), 0o644), io.BytesIO(data))
        for name, src in sources.items():
            with open(src, "rb") as f:
                st = os.fstat(f.fileno())
                tar.addfile(_tarinfo(name, st.st_size, 0o755 if st.st_mode & 0o111 else 0o644), f)


def _tarinfo(name, size, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def new_private_key():
    return Ed25519PrivateKey.generate()

"""Build a signed firmware patch, or make the signing key (see firmware/FORMAT.md)."""

import os
import re
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from django.core.management.base import BaseCommand, CommandError

from firmware import patch
from nodes import agent

AGENT = "nodes/agent.py"
VERSION_LINE = re.compile(r'^VERSION = "([^"]*)"$', re.MULTILINE)


class Command(BaseCommand):
    help = (
        "Build a signed firmware patch (--version --key --out [--payload]), "
        "or make a new signing key (--new-key KEYFILE)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (print Django's version) would clash with the patch's --version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--new-key", metavar="KEYFILE", help="write a new ed25519 signing key (PEM, mode 0600)")
        parser.add_argument("--version", help="the patch's version, three numbers like 1.1.0")
        parser.add_argument("--payload", metavar="DIR", help=f"files to ship (default: the node agent, {AGENT})")
        parser.add_argument("--key", metavar="KEYFILE", help="the PEM signing key made by --new-key")
        parser.add_argument("--out", metavar="FILE", help="where to write the patch")

    def handle(self, new_key=None, version=None, payload=None, key=None, out=None, **options):
        if new_key:
            self.new_key(Path(new_key))
            return
        missing = [f"--{name}" for name, value in (("version", version), ("key", key), ("out", out)) if not value]
        if missing:
            raise CommandError(f"{', '.join(missing)} required (or --new-key KEYFILE to make a signing key)")
        try:
            patch.parse_version(version)  # first: it is written into the agent's source
            self.build(version, payload, load_key(Path(key)), Path(out))
        except patch.PatchError as e:
            raise CommandError(str(e)) from e

    def new_key(self, path):
        private_key = Ed25519PrivateKey.generate()
        pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            # O_EXCL: never overwrite a signing key; patches signed with it would become unverifiable.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as e:
            raise CommandError(f"{path} exists; refusing to overwrite a signing key") from e
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o600)
            f.write(pem)
        self.stdout.write(f"Wrote the signing key {path} (keep it secret). Trust it with FIRMWARE_TRUSTED_KEYS:")
        self.stdout.write(patch.public_key_text(private_key))

    def build(self, version, payload, private_key, out):
        with tempfile.TemporaryDirectory() as tmp:
            files = patch.collect(payload) if payload else {}
            if AGENT in files:
                check_agent_version(files[AGENT], version)
            else:
                files[AGENT] = stamped_agent(version, Path(tmp))
            manifest = patch.build_files(out, files, version, private_key)
        self.stdout.write(
            f"Built {out}: {manifest.name} {manifest.version}, {manifest.file_count} file(s), "
            f"{patch.human_size(manifest.size)}, sha256 {manifest.sha256}, signed by {manifest.key}"
        )


def load_key(path):
    try:
        private_key = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CommandError(f"cannot load the signing key {path}: {e}") from e
    if not isinstance(private_key, Ed25519PrivateKey):
        raise CommandError(f"{path} is not an ed25519 key; make one with --new-key")
    return private_key


def stamped_agent(version, tmp):
    """The node agent with VERSION set to the patch's, so that a node reports what it runs."""
    source = Path(agent.__file__)
    text, count = VERSION_LINE.subn(f'VERSION = "{version}"', source.read_text(), count=1)
    if count != 1:
        raise CommandError(f"{source} has no VERSION line to stamp")
    path = tmp / "agent.py"
    path.write_text(text)
    path.chmod(source.stat().st_mode & 0o777)
    return path


def check_agent_version(path, version):
    found = VERSION_LINE.search(path.read_text())
    if not found or found.group(1) != version:
        said = f'VERSION = "{found.group(1)}"' if found else "no VERSION"
        raise CommandError(f"{path} says {said} but --version is {version}: the nodes would report the wrong version")

"""Build a signed firmware patch, or make the signing key (see firmware/FORMAT.md)."""

import os
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
from nodes.agent import build as agent_build

AGENT = agent_build.AGENT_PAYLOAD


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
    """The one-file node agent with VERSION set to the patch's, so that a node reports what it runs."""
    try:
        return agent_build.build_zipapp(tmp / "flotilla-agent", version)
    except agent_build.BuildError as e:
        raise CommandError(str(e)) from e


def check_agent_version(path, version):
    found = agent_build.version_of(path)
    if found != version:
        said = f'VERSION = "{found}"' if found else "no VERSION"
        raise CommandError(f"{path} says {said} but --version is {version}: the nodes would report the wrong version")

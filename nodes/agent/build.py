"""The one-file agent: this package as an executable zipapp, installed on a node as bin/flotilla-agent.

The node runs it exactly as it ran the single-module agent before:
``python3 -IS flotilla-agent VERB [ARGS]``. Built from a copy of the package
with ``VERSION`` stamped, with no timestamps: the same source and version
give the same bytes (a firmware patch is reproducible).
"""

import io
import os
import re
import shutil
import tempfile
import zipapp
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # nodes/agent
INTERPRETER = "/usr/bin/python3 -IS"
AGENT_PAYLOAD = "bin/flotilla-agent"  # where a firmware patch carries it, relative to the product's root
VERSION_MODULE = "nodes/agent/formats.py"
VERSION_LINE = re.compile(r'^VERSION = "([^"]*)"', re.MULTILINE)
DATE_TIME = (1980, 1, 1, 0, 0, 0)  # zip's earliest: no build time in the file
MAIN = "import sys\n\nfrom nodes.agent.serve import main\n\nsys.exit(main())\n"


class BuildError(Exception):
    pass


def build_zipapp(target, version=None, source=None, interpreter=INTERPRETER):
    """Write the agent package (source: a copy of nodes/agent, default this one) to target as a zipapp.

    version, if given, replaces the VERSION line of formats.py. Returns target.
    """
    source = Path(source or PACKAGE)
    target = Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(source, root / "nodes" / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (root / "nodes" / "__init__.py").write_text("")
        (root / "__main__.py").write_text(MAIN)
        if version is not None:
            stamp(root / VERSION_MODULE, version)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as z:
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    raise BuildError(f"{path.relative_to(root)} is not a regular file")
                if path.is_file():
                    info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=DATE_TIME)
                    info.external_attr = 0o644 << 16
                    z.writestr(info, path.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        archive.seek(0)
        partial = target.with_name(f".{target.name}.tmp")
        try:
            # zipapp puts the "#!" line before the archive (and makes the file executable).
            zipapp.create_archive(archive, partial, interpreter=interpreter)
            os.chmod(partial, 0o755)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return target


def stamp(module, version):
    """Set VERSION in the module's source; refuse a version that could break out of the string."""
    if not re.fullmatch(r"[0-9A-Za-z.+-]+", version):
        raise BuildError(f"cannot stamp version {version!r}")
    text, count = VERSION_LINE.subn(f'VERSION = "{version}"', module.read_text(), count=1)
    if count != 1:
        raise BuildError(f"{module} has no VERSION line to stamp")
    module.write_text(text)


def version_of(path):
    """The VERSION a built agent says, or None if the file is not one."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        found = VERSION_LINE.search(path.read_text(errors="replace"))  # an agent of a single module
        return found.group(1) if found else None
    with zipfile.ZipFile(path) as archive:
        try:
            found = VERSION_LINE.search(archive.read(VERSION_MODULE).decode())
        except KeyError:
            return None
    return found.group(1) if found else None

"""The layout the README describes: every import goes down the layers, never up or sideways.

Read from the source (function-level imports included: a lazy import is still a dependency), so a
change that makes ``cluster`` lean on ``firmware`` or puts a Django import into the node agent
fails here, before anyone has to untangle it.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("wui", "nodes", "cluster", "firmware")
# wui's helpers every app may use; the rest of wui (settings, urls, views, menu, commands) composes the apps.
WUI_HELPERS = {
    "wui",
    "wui.text",
    "wui.bounded",
    "wui.forms",
    "wui.uploads",
    "wui.tls",
    "wui.failpoints",
    "wui.broker",
    "wui.celery",
}
WUI_HELPERS |= {"wui.middleware", "wui.views"}
LAYERS = ["nodes.agent", "wui helpers", "cluster", "firmware", "nodes", "wui"]


def layer(module):
    if module in WUI_HELPERS:
        return "wui helpers"
    if module == "nodes.agent" or module.startswith("nodes.agent."):
        return "nodes.agent"
    return module.split(".")[0]


def product_modules():
    found = {}
    for path in ROOT.glob("*/**/*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] not in APPS or "migrations" in parts:
            continue
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(path):
    """(module imported, line) for every absolute import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield from ((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)


def own(name, modules):
    """The product module ``name`` refers to (a module, or a name inside one), or None for a library."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_goes_down_the_layers():
    modules = product_modules()
    wrong = set()
    for module, path in modules.items():
        for name, line in imports(path):
            target = own(name, modules)
            if target is None or target == module:
                continue
            mine, theirs = layer(module), layer(target)
            if LAYERS.index(theirs) > LAYERS.index(mine):
                wrong.add(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(sorted(wrong))


def test_cluster_never_imports_firmware():
    modules = product_modules()
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in modules.items()
        if layer(module) == "cluster"
        for name, line in imports(path)
        if name == "firmware" or name.startswith("firmware.")
    ]
    assert not found


def test_the_node_agent_uses_the_standard_library_only():
    modules = product_modules()
    outside = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for module, path in modules.items()
        if layer(module) == "nodes.agent"
        for name, line in imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names and layer(own(name, modules) or name) != "nodes.agent"
    ]
    assert not outside


def test_only_tests_bench_and_the_demo_use_the_harness():
    users = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in product_modules().items()
        for name, line in imports(path)
        if name.startswith("tests") and module != "wui.management.commands.demo"
    ]
    assert not users

"""The local cluster: test and demo infrastructure that simulates machines, not part of a node.

`make demo` (wui/management/commands/demo.py), the test fixtures (tests/conftest.py) and the
benchmarks (bench/*.py) start their clusters with it; nothing a unit runs imports it.
"""

from tests.harness.local_cluster import (
    AGENT_PYTHON,
    BASE_DIR,
    HTTP_PORT,
    ROOT,
    SSH_PORT,
    WUI_PORT,
    Cluster,
    HarnessError,
    Node,
    https_context,
)

__all__ = [
    "AGENT_PYTHON",
    "BASE_DIR",
    "HTTP_PORT",
    "ROOT",
    "SSH_PORT",
    "WUI_PORT",
    "Cluster",
    "HarnessError",
    "Node",
    "https_context",
]

"""Cluster rows built directly in the database: no harness, no worker (pushes simply find no one)."""

import pytest

from tests.helpers import make_cluster


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    settings.BACKUP_KEY_FILE = settings.VAR_DIR / "backup_key"  # each test is its own cluster, with its own key
    return settings.VAR_DIR


@pytest.fixture
def cluster_rows(db):
    return make_cluster()

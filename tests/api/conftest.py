"""The REST API's tests: a cluster made in the database (no real node), and API keys to call it with."""

import pytest
from rest_framework.test import APIClient

from tests.helpers import make_cluster
from wui.api import keys


@pytest.fixture
def cluster(db):
    return make_cluster()


@pytest.fixture
def full_key(admin_user):
    return keys.create(admin_user, "tests", read_only=False)[1]


@pytest.fixture
def api(full_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {full_key}")
    return client


@pytest.fixture
def reader(admin_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.create(admin_user, 'reader')[1]}")
    return client

import pytest

from cluster.configuration import rules as config
from cluster.models import Node
from firmware import patch
from tests.helpers import add_all_enabled, all_up, unit_state, wait_until, with_virtual_service


@pytest.fixture
def key(settings):
    """A signing key this unit trusts."""
    private = patch.new_private_key()
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(private)]
    return private


@pytest.fixture
def four(cluster_on_node1, admin_client):
    """Node 1 the admin, nodes 2-4 enabled and Up, one Virtual Service."""
    units = cluster_on_node1
    with_virtual_service()
    add_all_enabled(admin_client, [units.node(n) for n in (2, 3, 4)])
    for n in (2, 3, 4):
        wait_until(lambda n=n: unit_state(units.node(n), "traffic.json").get("accepting") is True, 15)
    all_up()
    # A software update starts only on a cluster in sync: the last Enable's generation has reached every node.
    newest = config.latest_number()
    wait_until(
        lambda: not Node.objects.filter(applied_generation__lt=newest).exists(),
        15,
        message=lambda: str(list(Node.objects.values_list("number", "applied_generation", "config_error"))),
    )
    return units

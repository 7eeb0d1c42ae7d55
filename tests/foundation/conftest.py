import pytest


@pytest.fixture(scope="module")
def harness(harness):
    """The units as freshly installed: earlier modules may have joined and deleted them."""
    harness.factory_reset(only_if_changed=True)
    return harness

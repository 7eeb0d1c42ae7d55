import pytest

from firmware import patch


@pytest.fixture
def key(settings):
    """A signing key this unit trusts."""
    private = patch.new_private_key()
    settings.FIRMWARE_TRUSTED_KEYS = [patch.public_key_text(private)]
    return private

import pytest


@pytest.fixture
def dash(client, creator):
    """The test client, logged in as the store's creator."""
    client.force_login(creator)
    return client

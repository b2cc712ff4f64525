import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile


def png(name: str = "cover.png", size: tuple[int, int] = (8, 6)) -> SimpleUploadedFile:
    """A real (tiny) PNG image, as a browser would upload it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (47, 91, 211)).save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.fixture
def dash(client, creator):
    """The test client, logged in as the store's creator."""
    client.force_login(creator)
    return client


@pytest.fixture
def other_creator(db):
    from stall.testing import UserFactory

    return UserFactory()

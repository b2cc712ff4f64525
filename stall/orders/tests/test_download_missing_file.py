import pytest
from django.core.files.storage import storages

from stall.orders.models import DownloadCount
from stall.orders.services import download_url
from stall.testing import buy, product_with_file

pytestmark = pytest.mark.django_db


def test_a_file_missing_from_storage_does_not_cost_a_download(client, store):
    """If the stored file has gone, the buyer gets a 404 and keeps all their downloads."""
    product = product_with_file(store=store)
    order = buy(store=store, product=product)
    entitlement = order.entitlements.get()
    file = product.files.get()
    storages["private"].delete(file.storage_name)
    response = client.get(download_url(entitlement=entitlement, file=file))
    assert response.status_code == 404
    assert not DownloadCount.objects.filter(entitlement=entitlement, count__gt=0).exists()

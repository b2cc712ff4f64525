from django.http import Http404
from django.shortcuts import redirect, render

from stall.catalog.selectors import product_get_public, products_public
from stall.core.errors import NotFound

from .models import Store
from .selectors import store_get_public


def front(request):
    stores = list(Store.objects.order_by("created_at")[:50])
    if len(stores) == 1:
        return redirect("stores:store", slug=stores[0].slug)
    return render(request, "stores/front.html", {"stores": stores})


def store_page(request, slug):
    try:
        store = store_get_public(slug=slug)
    except NotFound:
        raise Http404 from None
    return render(request, "stores/store.html", {"store": store, "products": products_public(store=store)})


def product_page(request, slug, product_slug):
    try:
        store = store_get_public(slug=slug)
        product = product_get_public(store=store, slug=product_slug)
    except NotFound:
        raise Http404 from None
    return render(request, "stores/product.html", {"store": store, "product": product, "files": product.files.all()})

from django.http import Http404
from django.shortcuts import redirect, render

from stall.accounts.services import buyer_from_request
from stall.catalog.models import LISTED_KINDS, ProductKind
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
    from stall.content.selectors import post_split_for, posts_public, tip_jar_panel
    from stall.core.markdown import render_markdown

    posts = [(post, render_markdown(post_split_for(post).preview)) for post in posts_public(store=store)[:5]]
    context = {
        "store": store, "products": products_public(store=store), "posts": posts,
        "tip_jar": tip_jar_panel(store=store, buyer=buyer_from_request(request)),
    }
    return render(request, "stores/store.html", context)


def product_page(request, slug, product_slug):
    try:
        store = store_get_public(slug=slug)
        product = product_get_public(store=store, slug=product_slug)
    except NotFound:
        raise Http404 from None
    # Posts and the tip jar are products too, with pages of their own.
    if product.kind == ProductKind.POST:
        return redirect("content:post", slug=store.slug, post_slug=product.slug)
    if product.kind == ProductKind.TIP:
        return redirect("content:tip", slug=store.slug)
    if product.kind not in LISTED_KINDS:
        raise Http404  # the API charges product has no page
    from stall.content.selectors import tip_jar_panel

    context = {
        "store": store, "product": product, "files": product.files.all(),
        "tip_jar": tip_jar_panel(store=store, buyer=buyer_from_request(request)),
    }
    return render(request, "stores/product.html", context)

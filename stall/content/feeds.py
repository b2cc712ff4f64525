"""The store's posts as RSS: free posts in full, priced posts as their free preview only."""

from django.contrib.syndication.views import Feed
from django.http import Http404
from django.urls import reverse

from stall.core.errors import NotFound
from stall.core.markdown import render_markdown
from stall.core.money import format_money
from stall.stores.selectors import store_get_public

from .selectors import post_split_for, posts_public


class PostsFeed(Feed):
    def get_object(self, request, slug):
        try:
            return store_get_public(slug=slug)
        except NotFound:
            raise Http404 from None

    def title(self, store):
        return f"{store.name}: posts"

    def link(self, store):
        return reverse("content:posts", args=[store.slug])

    def description(self, store):
        return f"New posts from {store.name}."

    def items(self, store):
        return posts_public(store=store)[:30]

    def item_title(self, post):
        return post.title

    def item_description(self, post):
        split = post_split_for(post)
        if post.is_free:
            return str(render_markdown(split.full))
        # Never the paid part: only the preview, then where to read on.
        price = format_money(post.amount, post.currency)
        return f"{render_markdown(split.preview)}<p><em>Read on for {price}.</em></p>"

    def item_link(self, post):
        return reverse("content:post", args=[post.store.slug, post.product.slug])

    def item_pubdate(self, post):
        return post.published_at

    def item_guid(self, post):
        return post.pk

    item_guid_is_permalink = False

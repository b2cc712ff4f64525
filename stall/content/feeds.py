"""The store's posts as RSS: free posts in full, priced or members-only posts as their free
preview only. A member's private feed (a secret token in its address, from stall.orders.access)
carries in full every post that reader may read, and stops when the membership ends."""

from django.contrib.syndication.views import Feed
from django.http import Http404
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from stall.core.errors import NotFound
from stall.core.languages import language_for
from stall.core.markdown import render_markdown
from stall.core.money import format_money
from stall.stores.selectors import store_get_public

from .selectors import (
    feed_reader_for_token,
    post_readable_by,
    post_split_for,
    posts_gated_among,
    posts_public,
)


class PostsFeed(Feed):
    def get_object(self, request, slug):
        try:
            return store_get_public(slug=slug)
        except NotFound:
            raise Http404 from None

    def get_feed(self, obj, request):
        # Every text of the feed (its title, each item's "read on") is written here, in the
        # reader's language: the page's for the public feed, the member's for a private one.
        with translation.override(self.language_of(obj)):
            return super().get_feed(obj, request)

    def language_of(self, store) -> str:
        return translation.get_language()

    def title(self, store):
        return gettext("%(store)s: posts") % {"store": store.name}

    def link(self, store):
        return reverse("content:posts", args=[store.slug])

    def description(self, store):
        return gettext("New posts from %(store)s.") % {"store": store.name}

    def items(self, store):
        # Whether each post is read in full here is decided now, on this request's objects (one
        # Feed instance serves every request, so nothing is kept on it).
        posts = list(posts_public(store=store)[:30])
        gated = posts_gated_among(posts=posts)
        for post in posts:
            post.feed_full = self.readable(store, post, gated=post.product_id in gated)
        return posts

    def item_title(self, post):
        return post.title

    def readable(self, store, post, *, gated: bool) -> bool:
        return post.is_free and not gated

    def item_description(self, post):
        split = post_split_for(post)
        if post.feed_full:
            return str(render_markdown(split.full))
        # Never the paid part: only the preview, then where to read on.
        if post.is_free:
            return f"{render_markdown(split.preview)}<p><em>{gettext('Members read on.')}</em></p>"
        price = format_money(post.amount, post.currency)
        return f"{render_markdown(split.preview)}<p><em>{gettext('Read on for %(price)s.') % {'price': price}}</em></p>"

    def item_link(self, post):
        return reverse("content:post", args=[post.store.slug, post.product.slug])

    def item_pubdate(self, post):
        return post.published_at

    def item_guid(self, post):
        return post.pk

    item_guid_is_permalink = False


class PrivatePostsFeed(PostsFeed):
    """A member's own feed, for podcast and reader apps: "not found" once the token is rotated or
    the membership has ended."""

    def get_object(self, request, slug, token):
        store = super().get_object(request, slug)
        reader = feed_reader_for_token(store=store, token=token)
        if reader is None:
            raise Http404
        # A podcast or reader app asks with no language of its own: the member's, as they joined.
        store.feed_reader, store.feed_language = reader.email, language_for(reader.language)
        return store

    def language_of(self, store) -> str:
        return store.feed_language

    def readable(self, store, post, *, gated: bool) -> bool:
        return post_readable_by(post=post, email=store.feed_reader, gated=gated)

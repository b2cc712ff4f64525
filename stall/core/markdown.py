"""Markdown written by creators, rendered safely for buyers.

markdown-it-py with raw HTML switched off escapes any tags a creator types and refuses
``javascript:`` links; nh3 (ammonia) then keeps only an allow-list of tags and attributes, so a
future change to the renderer's options cannot open a script-injection hole by itself.
"""

from functools import cache

from django.utils.safestring import SafeString, mark_safe

from stall.core.lazy import LazyModule

# Both on first use: every web worker and the task worker import this module, few of them render
# Markdown soon, and the two hold ~3 MB of RSS in each process that imports them (bench/memory.py).
markdown_it = LazyModule("markdown_it")
nh3 = LazyModule("nh3")


@cache
def markdown_parser(**options):
    """A CommonMark parser with tables and ``options``, made once per process on first use (two
    threads racing for it may each make one; either serves)."""
    return markdown_it.MarkdownIt("commonmark", options).enable("table")

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"style"}, "td": {"style"}}


def render_markdown(text: str) -> SafeString:
    html = markdown_parser(html=False, linkify=False, typographer=True).render(text or "")
    clean = nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener",
                       filter_style_properties={"text-align"})
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above

"""Creator Markdown rendered for buyers: formatting kept, scripts removed."""

from html.parser import HTMLParser

import pytest

from stall.core.markdown import render_markdown


def tags_in(html: str) -> list[tuple[str, list]]:
    """The real tags in ``html`` with their attributes (escaped text is not a tag)."""
    found = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def test_headings_lists_emphasis_and_links_render():
    """Headings, lists, emphasis, code and http(s) links become HTML; links get rel=nofollow."""
    html = render_markdown(
        "# Title\n\n## Sub\n\n- one\n- two\n\n1. a\n2. b\n\n**b** _i_ `c`\n\n[site](https://example.com \"T\")"
    )
    assert html == (
        "<h1>Title</h1>\n<h2>Sub</h2>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
        "<ol>\n<li>a</li>\n<li>b</li>\n</ol>\n"
        "<p><strong>b</strong> <em>i</em> <code>c</code></p>\n"
        '<p><a href="https://example.com" title="T" rel="nofollow noopener">site</a></p>\n'
    )


def test_tables_and_mailto_links_render():
    """Tables and mailto: links are kept."""
    assert render_markdown("| a | b |\n|---|---|\n| 1 | 2 |") == (
        "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n"
        "<tbody>\n<tr>\n<td>1</td>\n<td>2</td>\n</tr>\n</tbody>\n</table>\n"
    )
    assert render_markdown("[write](mailto:me@example.com)") == (
        '<p><a href="mailto:me@example.com" rel="nofollow noopener">write</a></p>\n'
    )


def test_script_tags_are_shown_as_text():
    """A <script> a creator types is escaped into visible text, never run."""
    html = render_markdown("Hi <script>alert(1)</script>")
    assert html == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java&#115;cript:alert(1))",
        "[click][1]\n\n[1]: javascript:alert(1)",
        "<javascript:alert(1)>",
        '<a href="javascript:alert(1)">click</a>',
        "![x](javascript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<img src=x onerror=alert(1)>",
    ],
)
def test_script_links_and_event_handlers_are_neutralised(text):
    """javascript:/data: links and raw HTML with handlers never come out as live links or tags."""
    tags = tags_in(render_markdown(text))
    assert tags and all(tag == ("p", []) for tag in tags), tags


def test_rendered_markdown_is_safe_for_templates():
    """The result is marked safe, so templates insert it without escaping it twice."""
    assert render_markdown("**b**").__html__() == "<p><strong>b</strong></p>\n"
    assert render_markdown(None) == ""

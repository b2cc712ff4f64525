"""A post's free preview: the Markdown above the marker line, or its first paragraphs.

The marker is a line holding only ``<!-- more -->`` (WordPress's; any case, spaces allowed
inside). With no marker the preview is the first ``STALL_POST_PREVIEW_PARAGRAPHS`` paragraphs,
with any headings, lists or images between them. A priced post with no marker never gives its
whole text away: when the text has no more than that many blocks, its last block stays behind
the paywall (and a one-block post has an empty preview).

The split works on markdown-it's block tokens, so a marker or a blank line inside a fenced code
block is text, not a boundary.
"""

import re
from dataclasses import dataclass

from stall.core.markdown import markdown_parser

MORE_MARKER = "<!-- more -->"
_MARKER = re.compile(r"[ \t]*<!--\s*more\s*-->[ \t]*", re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    preview: str  # Markdown shown to everyone
    rest: str  # Markdown behind the paywall ("" when the preview is the whole text)
    marker: bool  # the author placed the marker

    @property
    def full(self) -> str:
        """The whole text without the marker line."""
        return f"{self.preview}\n\n{self.rest}".strip() if self.rest else self.preview


def _blocks(text: str) -> list[tuple[str, int, int]]:
    """Top-level blocks as (token type, first line, line after the last), in order."""
    return [
        (token.type, token.map[0], token.map[1])
        for token in markdown_parser(html=False).parse(text)
        if token.level == 0 and token.nesting in (0, 1) and token.map
    ]


def post_split(body: str, *, paragraphs: int, priced: bool) -> Split:
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    blocks = _blocks(text)
    for kind, start, end in blocks:
        # The marker is a paragraph of its own line(s); markdown-it (raw HTML off) reads it as text.
        if kind != "paragraph_open":
            continue
        for index in range(start, end):
            if _MARKER.fullmatch(lines[index]):
                preview = "\n".join(lines[:index]).strip()
                rest = "\n".join(lines[index + 1:]).strip()
                return Split(preview=preview, rest=rest, marker=True)
    count, cut = 0, None
    for position, (kind, _start, end) in enumerate(blocks):
        if kind == "paragraph_open":
            count += 1
            if count == paragraphs:
                cut = position
                break
    if cut is None:
        cut = len(blocks) - 1  # fewer paragraphs than asked for: all of it
    if priced and cut >= len(blocks) - 1:
        cut = len(blocks) - 2  # keep the last block behind the paywall
    if cut < 0:
        return Split(preview="", rest=text.strip(), marker=False)
    end = blocks[cut][2]
    return Split(preview="\n".join(lines[:end]).strip(), rest="\n".join(lines[end:]).strip(), marker=False)

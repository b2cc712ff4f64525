"""The free preview of a post: stall/content/preview.py."""

from stall.content.preview import post_split


def test_the_marker_line_ends_the_preview_and_is_dropped():
    """Everything above a "<!-- more -->" line is the preview; the line itself is in neither part."""
    split = post_split("Intro.\n\nMore intro.\n\n<!-- more -->\n\nPaid part.", paragraphs=1, priced=True)
    assert (split.preview, split.rest, split.marker) == ("Intro.\n\nMore intro.", "Paid part.", True)
    assert split.full == "Intro.\n\nMore intro.\n\nPaid part."


def test_the_marker_is_found_in_any_case_and_spacing_even_without_blank_lines():
    """"<!--MORE-->" on its own line inside a paragraph still splits it."""
    split = post_split("Free line.\n  <!--MORE-->  \nPaid line.", paragraphs=2, priced=True)
    assert (split.preview, split.rest) == ("Free line.", "Paid line.")


def test_a_marker_inside_a_code_block_is_text():
    """A fenced code block that shows the marker does not end the preview there."""
    body = "```\n<!-- more -->\n```\n\nFirst.\n\nSecond.\n\nThird."
    split = post_split(body, paragraphs=2, priced=True)
    assert split.marker is False
    assert split.preview == "```\n<!-- more -->\n```\n\nFirst.\n\nSecond."
    assert split.rest == "Third."


def test_without_a_marker_the_preview_is_the_first_paragraphs_with_what_comes_between():
    """Two paragraphs by default; a heading and a list before them ride along, the rest is paid."""
    body = "# Title\n\nOne.\n\n- a\n- b\n\nTwo\nstill two.\n\nThree.\n\nFour."
    split = post_split(body, paragraphs=2, priced=True)
    assert split.preview == "# Title\n\nOne.\n\n- a\n- b\n\nTwo\nstill two."
    assert split.rest == "Three.\n\nFour."


def test_a_priced_post_never_gives_its_whole_text_away():
    """With no more paragraphs than the preview holds, the last block stays paid; one block means an empty preview."""
    assert (post_split("One.\n\nTwo.", paragraphs=2, priced=True).preview, post_split("One.\n\nTwo.", paragraphs=2, priced=True).rest) == ("One.", "Two.")
    only = post_split("Only paragraph.", paragraphs=2, priced=True)
    assert (only.preview, only.rest) == ("", "Only paragraph.")


def test_a_free_post_may_be_all_preview():
    """A free post's short text is all shown."""
    split = post_split("One.\n\nTwo.", paragraphs=2, priced=False)
    assert (split.preview, split.rest) == ("One.\n\nTwo.", "")


def test_windows_line_endings_split_the_same():
    """Text pasted with CRLF line ends splits at the same places."""
    split = post_split("A.\r\n\r\n<!-- more -->\r\n\r\nB.", paragraphs=2, priced=True)
    assert (split.preview, split.rest) == ("A.", "B.")


def test_an_empty_body_has_an_empty_preview():
    """No text, nothing to show or hide."""
    split = post_split("", paragraphs=2, priced=True)
    assert (split.preview, split.rest, split.full) == ("", "", "")

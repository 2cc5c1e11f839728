"""The text helpers of the Streamlit views (``turnout.integrations.streamlit.render``): traced
text made literal for Streamlit's markdown (``plain``, on any text), and the colour-coded diff as
inert HTML (keys, values and artifact refs escaped, no line break that would end the HTML
block). Without Streamlit, importing the adapter names the extra to install."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies

from tests.integrations.missing_extra import import_without

pytest.importorskip("streamlit")

from turnout.core.serde import TAG
from turnout.core.trackview import StateDiff
from turnout.integrations.streamlit.render import diff_html, plain

PAYLOAD = (
    "![x](http://127.0.0.1:9/x.png) **bold** <img src=x onerror=alert(1)> $x$ :red[boom] "
    ":material/home: `code` [link](http://127.0.0.1:9/)"
)


def _unescape_strictly(markdown: str) -> str:
    """``markdown`` read as CommonMark reads backslash escapes; fails on an unescaped markup
    character (any ASCII punctuation) or a backslash escaping nothing."""
    out, position = [], 0
    while position < len(markdown):
        char = markdown[position]
        if char == "\\":
            escaped = markdown[position + 1 : position + 2]
            assert re.fullmatch(r"[!-/:-@\[-`{-~]", escaped), markdown
            out.append(escaped)
            position += 2
            continue
        assert not re.fullmatch(r"[!-/:-@\[-`{-~]", char), (char, markdown)
        out.append(char)
        position += 1
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(text=strategies.text())
def test_plain_makes_any_text_literal_on_one_line(text: str) -> None:
    shown = plain(text)
    assert _unescape_strictly(shown) == " ".join(text.splitlines())
    assert len(shown.splitlines()) <= 1


def test_plain_escapes_every_streamlit_markup() -> None:
    assert plain(PAYLOAD).startswith(r"\!\[x\]\(http\:\/\/127\.0\.0\.1\:9\/x\.png\) \*\*bold\*\*")
    assert r"\$x\$ \:red\[boom\] \:material\/home\:" in plain(PAYLOAD)


def test_the_diff_leaves_no_line_break_that_would_end_the_html_block() -> None:
    """A blank line in a key would close the HTML block st.markdown renders and turn what
    follows into markdown (a remote image); the diff keeps it one inert line."""
    hostile = "k\n\n![x](http://127.0.0.1:9/x.png)\r\n"
    table = diff_html(StateDiff(added={hostile: hostile}, removed={}, changed={}))
    assert "\n" not in table
    assert "\r" not in table
    assert "&#10;&#10;![x]" in table


def test_the_diff_escapes_keys_and_old_and_new_values() -> None:
    diff = StateDiff(
        added={"<script>": "<b>"}, removed={}, changed={"k": ("<img src=x>", "<script>1</script>")}
    )
    table = diff_html(diff)
    assert "<img" not in table
    assert "<script>" not in table
    assert "&lt;img src=x&gt;" in table
    assert "&lt;script&gt;" in table
    assert diff_html(StateDiff(added={}, removed={}, changed={})).endswith(
        "changed no state.</em></p>"
    )


def test_the_diff_escapes_a_hostile_ref_name_media_type_and_key() -> None:
    """The diff is rendered with unsafe_allow_html: a ref's traced name and media type, and a
    traced key, reach it as text, never as markup."""
    hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>\n\n![x](http://e/x.png)'
    stored = {
        TAG: "artifact",
        "v": {"digest": "a" * 64, "size_bytes": 7, "media_type": hostile, "name": hostile},
    }
    page = diff_html(StateDiff(added={hostile: stored}, removed={}, changed={"k": (1, stored)}))
    assert "<img" not in page
    assert "<script" not in page
    assert "\n" not in page
    assert "&lt;img src=x" in page
    assert "artifact · " in page


def test_without_streamlit_the_error_names_the_extra() -> None:
    out = import_without("streamlit", "turnout.integrations.streamlit")
    assert out.startswith("MissingExtraError")
    assert 'pip install "turnout[streamlit]"' in out

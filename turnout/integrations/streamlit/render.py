"""Text the Streamlit views show, built without Streamlit: traced text made literal for
Streamlit's markdown (``plain``), model output kept from loading remote images
(``without_remote_images``), the colour-coded diff as HTML (every value escaped) and value
truncation."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from turnout.core.trackview import StateDiff
from turnout.integrations._artifact_refs import compact

__all__ = [
    "diff_html",
    "inline_html",
    "plain",
    "truncate",
    "without_remote_images",
]

MAX_ITEMS = 50
MAX_TEXT = 300
_ADDED, _REMOVED, _CHANGED = "#e6f4ea", "#fce8e6", "#fef7e0"
# Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and between them
# they start every construct Streamlit's markdown knows (emphasis, links and images, HTML, code,
# headings and lists, tables, ``$`` maths, ``:red[...]`` and ``:material/...:`` directives).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# A markdown image (inline ``![alt](url)`` or by reference ``![alt][ref]``) starts with ``![``;
# an HTML one with a tag that loads a URL. Code (fenced or inline) shows them as text already.
_IMAGE = re.compile(r"!\[")
_HTML_IMAGE = re.compile(r"<(?=\s*(?:img|picture|source|video|audio|svg|iframe|object)\b)", re.I)
_CODE = re.compile(r"(```.*?(?:```|\Z)|`[^`\n]*`)", re.S)


def plain(text: object) -> str:
    """``text`` as literal text in any Streamlit element that renders markdown (titles,
    captions, alerts, button and expander labels): every markup character backslash-escaped,
    line breaks kept as spaces (a label is one line)."""
    flat = " ".join(str(text).splitlines())
    return _PUNCTUATION.sub(r"\\\1", flat)


def without_remote_images(markdown: str) -> str:
    """``markdown`` with its images shown as their text (``![alt](url)`` literally) instead of
    loaded: model output decides what the reader sees, not what the reader's browser fetches."""
    parts = _CODE.split(markdown)
    for index in range(0, len(parts), 2):  # the odd parts are code, left as they are
        parts[index] = _HTML_IMAGE.sub("&lt;", _IMAGE.sub(r"!\\[", parts[index]))
    return "".join(parts)


def truncate(value: Any, max_items: int = MAX_ITEMS) -> Any:
    """``value`` with long lists and dicts cut to ``max_items`` entries (a marker says how many
    were left out), so a 5,000-item list renders as fast as a short one."""
    if isinstance(value, list):
        head = [truncate(v, max_items) for v in value[:max_items]]
        if len(value) > max_items:
            head.append(f"… {len(value) - max_items:,} more items")
        return head
    if isinstance(value, dict):
        items = list(value.items())
        out = {k: truncate(v, max_items) for k, v in items[:max_items]}
        if len(items) > max_items:
            out["…"] = f"{len(items) - max_items:,} more keys"
        return out
    return value


def _short(value: Any) -> str:
    text = json.dumps(compact(truncate(value, 10)), ensure_ascii=False, default=repr)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    return inline_html(text)


def inline_html(text: str) -> str:
    """``text`` as inert HTML inside an HTML block that ``st.markdown(..., unsafe_allow_html=True)``
    renders: tags escaped, and no line break left raw, since a blank line would end the HTML block
    and hand what follows (``![x](http://...)``) to the markdown renderer."""
    return html.escape(text).replace("\r", "&#13;").replace("\n", "&#10;")


def diff_html(diff: StateDiff) -> str:
    """The diff as an HTML table: added keys green, removed red, changed amber (old → new);
    an artifact ref as its one-line description (``artifact_refs.compact``)."""
    if not diff:
        return "<p><em>This step changed no state.</em></p>"
    rows = []
    for key, value in diff.added.items():
        rows.append((_ADDED, "+ added", key, "", _short(value)))
    for key, value in diff.removed.items():
        rows.append((_REMOVED, "- removed", key, _short(value), ""))
    for key, (old, new) in diff.changed.items():
        rows.append((_CHANGED, "~ changed", key, _short(old), _short(new)))
    body = "".join(
        f'<tr style="background:{colour}"><td>{kind}</td><td><code>{inline_html(key)}</code></td>'
        f"<td><code>{old}</code></td><td><code>{new}</code></td></tr>"
        for colour, kind, key, old, new in rows
    )
    return (
        '<table class="turnout-diff" style="width:100%;border-collapse:collapse">'
        "<tr><th>change</th><th>key</th><th>before</th><th>after</th></tr>"
        f"{body}</table>"
    )

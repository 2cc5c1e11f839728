"""Text the UI shows, built without Streamlit: traced text made literal for Streamlit's markdown
(``plain``) and model output kept from loading remote images (``without_remote_images``), the
colour-coded diff and the span waterfall as HTML (every traced value escaped), the graph as DOT,
the fork snippet and its shell command (every value quoted), the reproduce fixture and value
truncation."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shlex
from pathlib import Path
from typing import Any

from turnout.core.visualize import ERROR_COLOR, HIGHLIGHT_FILL
from turnout.integrations.streamlit.artifact_refs import compact
from turnout.integrations.streamlit.data import StateDiff, Step

__all__ = [
    "diff_html",
    "fmt_duration",
    "fmt_time",
    "fork_snippet",
    "graph_dot",
    "plain",
    "reproduce_command",
    "reproduce_fixture",
    "truncate",
    "waterfall_html",
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


def fmt_time(value: float | None) -> str:
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 0.001:
        return f"{seconds * 1_000_000:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


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


def waterfall_html(step: Step) -> str:
    """The step and its spans on the step's own time scale (not the whole run's)."""
    start = step.start
    end = step.end or max(
        [t for s in step.spans.values() for t in (s.start, s.end) if t is not None] or [start or 0]
    )
    if start is None or end is None:
        return "<p><em>No timing recorded.</em></p>"
    total = max(end - start, 1e-9)

    def bar(label: str, depth: int, a: float | None, b: float | None, colour: str) -> str:
        a = start if a is None else a
        b = end if b is None else b
        left = max(0.0, (a - start) / total * 100)
        width = max(0.5, (b - a) / total * 100)
        return (
            '<div style="display:flex;align-items:center;font-size:12px;margin:2px 0">'
            f'<div style="width:30%;padding-left:{depth * 14}px;overflow:hidden;'
            f'white-space:nowrap">{inline_html(label)}</div>'
            '<div style="position:relative;width:55%;height:14px;background:#f1f3f4">'
            f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;height:14px;'
            f'background:{colour}"></div></div>'
            f'<div style="width:15%;text-align:right">{fmt_duration(b - a)}</div></div>'
        )

    rows = [bar(f"{step.action} (step {step.seq})", 0, start, end, _status_colour(step.status))]
    for span in sorted(step.spans.values(), key=lambda s: (s.start or 0, s.span_id)):
        colour = "#c0392b" if span.error else "#f4b400"
        rows.append(bar(span.name, span.depth + 1, span.start, span.end, colour))
    if step.stream_first is not None:
        items = f", {step.stream_items} items" if step.stream_items is not None else ""
        rows.append(bar(f"stream: first item{items}", 1, start, step.stream_first, "#34a853"))
    return f'<div class="turnout-waterfall">{"".join(rows)}</div>'


def _status_colour(status: str) -> str:
    return {"failed": "#c0392b", "cancelled": "#c0392b", "running": "#9aa0a6"}.get(
        status, "#4285f4"
    )


def fork_snippet(
    *, storage_dir: str | Path, project: str, app_id: str, partition_key: str | None, seq: int,
    entrypoint: str | None,
) -> str:  # fmt: skip
    """The code that forks ``app_id`` at step ``seq`` into a new tracked application."""
    return f"""from turnout import ApplicationBuilder
from turnout.core.tracking import LocalTracker

tracker = LocalTracker({project!r}, storage_dir={str(storage_dir)!r})
app = (
    ApplicationBuilder()
    .with_actions(...)  # the same actions and transitions as {app_id!r}
    .with_transitions(...)
    .initialize_from(
        tracker,
        resume_at_next_action=True,
        default_state={{}},
        default_entrypoint={entrypoint!r},
        fork_from_app_id={app_id!r},
        fork_from_partition_key={partition_key!r},
        fork_from_sequence_id={seq},
    )
    .with_tracker(tracker)
    .build()
)
app.run()  # continues from the state after step {seq}
"""


def reproduce_command(
    *, storage_dir: str | Path, project: str, app_id: str, partition_key: str | None, seq: int
) -> str:
    """The ``turnout test-case`` shell command for the step, every value quoted for a POSIX
    shell (a traced id or a directory may hold spaces, quotes or ``;``)."""
    words = [
        "turnout", "test-case", "--dir", str(storage_dir), "--project", project,
        "--app-id", app_id, "--sequence-id", str(seq), "--out", "tests/turnout_cases.json",
    ]  # fmt: skip
    if partition_key is not None:
        words[-2:-2] = ["--partition-key", partition_key]
    return shlex.join(words)


def reproduce_fixture(step: Step, before: dict[str, Any], after: dict[str, Any]) -> str:
    """A JSON test fixture for the step: the state it read, its inputs and the state it left."""
    fixture = {
        "action": step.action,
        "sequence_id": step.seq,
        "input_state": before,
        "inputs": step.inputs,
        "expected_state": after,
        "expected_result": step.result,
        "expected_error": step.error_summary,
    }
    return json.dumps(fixture, indent=2, ensure_ascii=False, default=repr)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def graph_dot(
    graph: dict[str, Any],
    *,
    counts: dict[str, int] | None = None,
    current: str | None = None,
    failed: set[str] | None = None,
) -> str:
    """A logged graph as Graphviz DOT: condition-labelled edges, run counts on the nodes,
    ``current`` filled, actions with failed steps outlined in red (the style of ``to_dot``)."""
    counts = counts or {}
    failed = failed or set()
    lines = [
        "digraph turnout {",
        "  rankdir=TB;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for act in graph.get("actions", []):
        name = str(act.get("name"))
        runs = counts.get(name, 0)
        label = f"{name}\nran {runs}x" if runs else name
        attrs = [f"label={_quote(label)}"]
        if name == graph.get("entrypoint"):
            attrs.append("peripheries=2")
        if name == current:
            attrs.append(f'style="rounded,filled,bold", fillcolor="{HIGHLIGHT_FILL}"')
        elif not runs:
            attrs.append('color="#999999", fontcolor="#999999"')
        if name in failed:
            attrs.append(f'color="{ERROR_COLOR}", penwidth=2')
        lines.append(f"  {_quote(name)} [{', '.join(attrs)}];")
    for t in graph.get("transitions", []):
        edge = f"  {_quote(str(t.get('from')))} -> {_quote(str(t.get('to')))}"
        condition = str(t.get("condition", "default"))
        if t.get("on_exception"):
            lines.append(
                f'{edge} [label={_quote(condition)}, style=dashed, color="{ERROR_COLOR}"];'
            )
        elif condition == "default":
            lines.append(f"{edge};")
        else:
            lines.append(f"{edge} [label={_quote(condition)}, style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"

"""Artifact refs in the values the tracking UI and the Streamlit views show, found and described
without any UI library.

A state holding an ``ArtifactRef`` is logged with the ref as a tagged object
(``{"__turnout__": "artifact", "v": {"digest": ..., "size_bytes": ..., ...}}``); the UI keeps
stored values in that JSON form and never decodes them. ``find_refs`` finds those objects (and
``ArtifactRef`` objects, in the views over a live application) in a value, checks each with
``ArtifactRef.from_json`` (which builds a record and calls nothing the data names), and
``compact`` replaces each with a one-line description for ``st.json`` and the diff. Both
``turnout.integrations.streamlit``'s views and the web UI's ``artifacts`` use this module.

Everything on a ref came from the log and is untrusted: ``ref_line`` is plain text for the
caller to escape (``render.plain`` in markdown, ``render.inline_html`` in HTML); the name
offered for a download is the ref's name only when it is a harmless file name
(``download_name``), and its MIME type only when it looks like one (``download_mime``).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import Any

from turnout.core.artifacts import ArtifactRef
from turnout.core.errors import InvalidArtifactRefError
from turnout.core.serde import TAG

__all__ = [
    "FoundRef",
    "compact",
    "download_mime",
    "download_name",
    "find_refs",
    "human_size",
    "ref_line",
]

MAX_DEPTH = 64  # a ref nested deeper is shown as its JSON (the stored form nests far less)
_KIND = "artifact"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ +-]{0,119}")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,10}")
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@dataclass(frozen=True, kw_only=True, slots=True)
class FoundRef:
    """A ref found in a value.

    Attributes:
        path: where it sits (``chart``, ``pages[2]``, ``report.cover``); traced text.
        ref: the checked ref, or ``None`` when the tagged object is not a valid ref.
        problem: why it is not (the ``InvalidArtifactRefError`` message), else ``None``.
    """

    path: str
    ref: ArtifactRef | None
    problem: str | None = None


def _as_ref(value: Any) -> FoundRef | None:
    """``value`` as a found ref (path left empty) if it is a ref or its stored form."""
    if isinstance(value, ArtifactRef):
        return FoundRef(path="", ref=value)
    if type(value) is not dict or value.get(TAG) != _KIND or set(value) != {TAG, "v"}:
        return None
    try:
        return FoundRef(path="", ref=ArtifactRef.from_json(value["v"]))
    except InvalidArtifactRefError as error:
        return FoundRef(path="", ref=None, problem=str(error))


def _child(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _path(node: tuple[Any, Any]) -> str:
    """The path text of a node ``(parent node, key)`` (the root's: ``(None, root)``)."""
    keys = []
    while node[0] is not None:
        keys.append(node[1])
        node = node[0]
    path: str = node[1]
    for key in reversed(keys):
        path = _child(path, key)
    return path


# What the walk visits: containers and refs. Scalars (most of a big state) are skipped before
# they are stacked, and a path is made into text only for a ref found.
_WALKED = (dict, list, tuple, ArtifactRef)


def _holds_walked(item: Any) -> bool:
    """Whether a dict, list or tuple holds anything the walk visits (its items' types are
    gathered at C speed: a list of 100,000 ints is passed over whole)."""
    if isinstance(item, dict):
        values: Any = item.values()
    elif isinstance(item, list | tuple):
        values = item
    else:
        return False
    return any(issubclass(kind, _WALKED) for kind in set(map(type, values)))


def find_refs(value: Any, *, root: str = "", limit: int = 1000) -> list[FoundRef]:
    """The refs in ``value`` (dicts and lists walked, at most ``limit`` refs), in order.

    Args:
        value: a stored value (JSON form) or a live one.
        root: the path of ``value`` itself (``"result"``); a state's keys start the paths.
        limit: stop after this many refs.
    """
    found: list[FoundRef] = []
    stack: list[tuple[tuple[Any, Any], Any, int]] = [((None, root), value, 0)]
    while stack and len(found) < limit:
        node, item, depth = stack.pop()
        ref = _as_ref(item)
        if ref is not None:
            found.append(FoundRef(path=_path(node) or "(value)", ref=ref.ref, problem=ref.problem))
        elif depth >= MAX_DEPTH or not _holds_walked(item):
            continue
        elif isinstance(item, dict):
            stack.extend(
                ((node, k), v, depth + 1)
                for k, v in reversed(item.items())
                if isinstance(v, _WALKED)
            )
        elif isinstance(item, list | tuple):
            stack.extend(
                ((node, i), item[i], depth + 1)
                for i in range(len(item) - 1, -1, -1)
                if isinstance(item[i], _WALKED)
            )
    return found


def compact(value: Any, _depth: int = 0) -> Any:
    """``value`` with every ref replaced by its one-line description (``ref_line``), so that
    ``st.json`` and the diff show "artifact · chart.png · image/png · 1.2 MiB · 3f2a..."
    instead of the tagged object. Other values are returned as they are."""
    ref = _as_ref(value)
    if ref is not None:
        return ref_line(ref.ref) if ref.ref is not None else "artifact · (not a valid ref)"
    if _depth >= MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {key: compact(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [compact(item, _depth + 1) for item in value]
    return value


def human_size(size: int) -> str:
    """``size`` bytes for people: ``512 B``, ``1.5 KiB``, ``4.0 MiB``."""
    amount = float(size)
    for unit in _UNITS:
        if amount < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def ref_line(ref: ArtifactRef) -> str:
    """One line describing ``ref``: name, media type, size and the first 12 hex digits of its
    digest. Plain text: the caller escapes it for where it goes."""
    name = " ".join((ref.name or "(no name)").split())[:120]
    kind = " ".join((ref.media_type or "unknown type").split())[:80]
    return f"artifact · {name} · {kind} · {human_size(ref.size_bytes)} · {ref.digest[:12]}"


def download_mime(ref: ArtifactRef) -> str:
    """The MIME type to send the blob with: the ref's (parameters dropped) when it has the
    shape of one, else ``application/octet-stream``."""
    kind = (ref.media_type or "").split(";", 1)[0].strip().lower()
    return kind if _MIME.fullmatch(kind) else "application/octet-stream"


def download_name(ref: ArtifactRef) -> str:
    """The file name a download offers: the ref's name when it is a plain file name (letters,
    digits, ``._ +-``, no path, at most 120 characters, not starting with a dot), else the
    digest's first 12 characters with an extension for the media type (``.bin`` if none)."""
    name = ref.name
    if name is not None and _SAFE_NAME.fullmatch(name) and not name.endswith((".", " ")):
        return name
    guessed = mimetypes.guess_extension(download_mime(ref), strict=False) or ""
    extension = guessed if _EXTENSION.fullmatch(guessed) else ".bin"
    return f"{ref.digest[:12]}{extension}"

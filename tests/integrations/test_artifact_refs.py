"""Artifact refs as the tracking UI and the Streamlit views describe them
(``turnout.integrations._artifact_refs``): sizes for people, the file name and MIME type a
download may carry (never a hostile one), refs found in stored and live values with their place,
and the one-line description that replaces each."""

from __future__ import annotations

import pytest

from turnout.core.artifacts import ArtifactRef
from turnout.core.serde import TAG
from turnout.integrations._artifact_refs import (
    compact,
    download_mime,
    download_name,
    find_refs,
    human_size,
    ref_line,
)

HOSTILE = "![x](http://127.0.0.1:9/x.png) **bold** <img src=x> :red[boom]"


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (4096, "4.0 KiB"), (5 * 2**20, "5.0 MiB")],
    ids=["zero", "bytes", "one-kib", "kib", "mib"],
)
def test_sizes_are_shown_for_people(size: int, shown: str) -> None:
    assert human_size(size) == shown


DIGEST = "ab" * 32


@pytest.mark.parametrize(
    ("name", "media_type", "offered"),
    [
        ("chart.png", "image/png", "chart.png"),
        ("report final.pdf", None, "report final.pdf"),
        ("../../etc/passwd", "text/plain", f"{DIGEST[:12]}.txt"),
        ("a/b.png", "image/png", f"{DIGEST[:12]}.png"),
        (".bashrc", None, f"{DIGEST[:12]}.bin"),
        ("x\r\nSet-Cookie: a=b", "image/png", f"{DIGEST[:12]}.png"),
        (HOSTILE, HOSTILE, f"{DIGEST[:12]}.bin"),
        (None, "application/json; charset=utf-8", f"{DIGEST[:12]}.json"),
        ("trailing.", None, f"{DIGEST[:12]}.bin"),
    ],
    ids=["plain", "space", "traversal", "slash", "dotfile", "header", "hostile", "none", "dot-end"],
)
def test_the_file_name_offered_is_the_refs_name_only_when_it_is_safe(
    name: str | None, media_type: str | None, offered: str
) -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=1, media_type=media_type, name=name)
    assert download_name(ref) == offered


def test_a_media_type_is_sent_only_when_it_has_the_shape_of_one() -> None:
    def mime(kind: str | None) -> str:
        return download_mime(ArtifactRef(digest=DIGEST, size_bytes=1, media_type=kind))

    assert mime("image/png") == "image/png"
    assert mime("Text/Plain; charset=utf-8") == "text/plain"
    assert mime("text/html\r\nX: y") == "application/octet-stream"
    assert mime(None) == "application/octet-stream"


def test_refs_are_found_in_stored_and_live_values_with_their_place() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=3, name="a.txt")
    stored = {TAG: "artifact", "v": ref.to_json()}
    bad = {TAG: "artifact", "v": {"digest": "../x", "size_bytes": 3}}
    found = find_refs({"chart": stored, "pages": [1, {"cover": ref}], "bad": bad})
    assert [(f.path, f.ref) for f in found[:2]] == [("chart", ref), ("pages[1].cover", ref)]
    assert (found[2].path, found[2].ref) == ("bad", None)
    assert "64 lowercase hex" in (found[2].problem or "")
    assert find_refs({TAG: "artifact", "v": ref.to_json(), "x": 1}) == []  # not the stored form


def test_compact_replaces_each_ref_by_its_line() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=2048, media_type="image/png", name="c.png")
    value = {"chart": {TAG: "artifact", "v": ref.to_json()}, "n": [ref, 1]}
    line = f"artifact · c.png · image/png · 2.0 KiB · {DIGEST[:12]}"
    assert ref_line(ref) == line
    assert compact(value) == {"chart": line, "n": [line, 1]}

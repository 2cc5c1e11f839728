"""Artifact refs in the values the Streamlit UI shows: the shared, UI-free helpers of
``turnout.integrations._artifact_refs`` (the web UI uses the same ones)."""

from __future__ import annotations

from turnout.integrations._artifact_refs import (
    MAX_DEPTH,
    FoundRef,
    compact,
    download_mime,
    download_name,
    find_refs,
    human_size,
    ref_line,
)

__all__ = [
    "MAX_DEPTH",
    "FoundRef",
    "compact",
    "download_mime",
    "download_name",
    "find_refs",
    "human_size",
    "ref_line",
]

"""The tracking UI's artifacts: each ``ArtifactRef`` in a shown value listed as one line (where it
sits, name, media type, size, short digest) with a **Download** button that reads the blob from
the artifact store the UI was given.

The store is a ``LocalArtifactStore`` over the directory given by ``--artifacts DIR`` after
``--`` (``turnout ui --artifacts DIR`` passes it), else ``$TURNOUT_UI_ARTIFACTS``. Drawing a page
reads no blob: a button only checks that the store has one (``store.exists``). The blob is read
when the button is clicked: Streamlit calls the button's function then, and the store checks the
bytes against the ref's digest before handing them over. The rerun the click starts checks the
blob too (streamed, not held in memory), so a blob that went missing or was damaged is explained
on the page instead of only failing the download. Without a store, or with a ref that is not
valid, the line says so and offers no button.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import streamlit as st

from turnout.core.artifacts import ArtifactRef, ArtifactStore, LocalArtifactStore
from turnout.core.errors import ArtifactIntegrityError, ArtifactNotFoundError
from turnout.integrations.streamlit.artifact_refs import (
    FoundRef,
    download_mime,
    download_name,
    find_refs,
    ref_line,
)
from turnout.integrations.streamlit.render import plain, truncate

__all__ = ["ARTIFACTS_ENV", "MAX_LISTED", "artifacts_dir", "configured_store", "show_artifacts"]

ARTIFACTS_ENV = "TURNOUT_UI_ARTIFACTS"
MAX_LISTED = 20  # refs listed (with a button each) under one value


def artifacts_dir() -> str | None:
    """The artifact store's directory: ``--artifacts DIR`` in the script's arguments, else
    ``$TURNOUT_UI_ARTIFACTS``, else ``None`` (no store)."""
    argv = sys.argv
    if "--artifacts" in argv[:-1]:
        return argv[argv.index("--artifacts") + 1]
    return os.environ.get(ARTIFACTS_ENV) or None


@st.cache_resource(show_spinner=False)
def _store(root: str) -> LocalArtifactStore:
    return LocalArtifactStore(root)


def configured_store() -> tuple[ArtifactStore | None, str | None]:
    """The store the UI was given, or ``None`` and why there is none (markdown)."""
    root = artifacts_dir()
    if root is None:
        return None, (
            "No artifact store is configured, so blobs cannot be downloaded: start the UI with "
            f"`turnout ui --artifacts DIR` (or set `{ARTIFACTS_ENV}`) naming the directory of "
            "the `LocalArtifactStore` the application wrote to."
        )
    path = Path(root)
    if not path.is_dir():  # LocalArtifactStore would create it: a typo must not make a store
        return None, (
            f"The artifact store directory {plain(repr(root))} does not exist, so blobs cannot "
            "be downloaded: pass the directory of the application's `LocalArtifactStore` to "
            "`turnout ui --artifacts DIR`."
        )
    return _store(str(path.resolve())), None


def show_artifacts(value: Any, *, key: str, root: str = "") -> list[FoundRef]:
    """List the refs in ``value`` (as shown: long lists cut like ``truncate`` cuts them), each
    with a download button when a store is configured; nothing when there are none.

    Args:
        value: a state, a diff's values, inputs or a result, in stored (JSON) form or live.
        key: unique on the page for this list (widget keys are built from it).
        root: the path of ``value`` itself, prefixed to each ref's place.

    Returns:
        The refs listed.
    """
    found = find_refs(truncate(value), root=root, limit=MAX_LISTED + 1)
    if not found:
        return []
    shown = found[:MAX_LISTED]
    st.markdown(f"**Artifacts** ({len(shown)}{'+' if len(found) > len(shown) else ''})")
    store, why = configured_store()
    if why is not None:
        st.info(why)
    for number, item in enumerate(shown):
        _row(item, store, key=f"artifact:{key}:{number}")
    if len(found) > len(shown):
        st.caption(f"Only the first {MAX_LISTED} artifact refs are listed here.")
    return shown


def _row(item: FoundRef, store: ArtifactStore | None, *, key: str) -> None:
    place = plain(item.path)
    if item.ref is None:
        st.warning(f"{place}: not a valid artifact ref, not offered ({plain(item.problem)})")
        return
    ref = item.ref
    text, button = st.columns([5, 1], vertical_alignment="center")
    text.markdown(f"{place} · {plain(ref_line(ref))}")
    if store is None:
        return
    try:
        present = store.exists(ref)
    except Exception as error:  # an unreadable store directory: said on the page
        text.error(f"{place}: the artifact store cannot be read ({plain(_reason(error))}).")
        return
    if not present:
        text.warning(
            f"{place}: the artifact store has no blob {ref.digest[:12]}… (deleted, or written to "
            "another store), so it cannot be downloaded."
        )
        return
    clicked = button.download_button(
        "Download",
        data=lambda: store.get(ref),  # called on click: the page itself never reads a blob
        file_name=download_name(ref),
        mime=download_mime(ref),
        key=f"{key}:{ref.digest[:16]}",
        help="Read the blob from the artifact store, checked against its digest",
    )
    if clicked:
        problem = _check(store, ref)
        if problem is not None:
            text.error(f"{place}: {problem}")


def _check(store: ArtifactStore, ref: ArtifactRef) -> str | None:
    """Why the blob of ``ref`` cannot be downloaded (markdown), or ``None`` if it is intact."""
    try:
        with store.open(ref):
            return None
    except ArtifactNotFoundError:
        return f"the blob {ref.digest[:12]}… is no longer in the artifact store."
    except ArtifactIntegrityError as error:
        return f"the blob is damaged and was not downloaded: {plain(error)}"
    except Exception as error:
        return f"the blob cannot be read: {plain(_reason(error))}"


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"

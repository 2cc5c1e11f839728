"""Artifacts: large values kept out of the state, in a content-addressed store.

A persister saves the state (or its delta) at every step; a 5 MB image or file kept in the
state is written again with every snapshot, and a tracker logs it too. Put it in an artifact
store instead and keep the small ``ArtifactRef`` that ``put`` returns in the state; a later
action gets the bytes back with ``store.get(ref)``::

    store = LocalArtifactStore("./artifacts")
    ref = store.put(png_bytes, media_type="image/png", name="chart.png")
    state = state.update(chart=ref)          # about 150 bytes in every save
    ...
    png = store.get(state["chart"])          # checked against the digest

Every store keeps a blob under its SHA-256 digest, so putting the same bytes twice stores them
once, and a ref names exactly one content. The rules are written once (in
``turnout.core._artifact_rules``), over an ``ArtifactBackend`` (raw bytes by digest):

* ``put`` hashes the bytes, writes them unless the backend has them already, and returns the
  ref; a backend's write is atomic (a reader sees the whole blob or none);
* ``get`` (and ``open``) check the bytes against the ref's digest and size before returning
  anything: damaged bytes raise ``ArtifactIntegrityError`` naming the ref and where they are;
* every key is built from a digest checked to be 64 hex characters, so no ref can name
  anything outside the store (``InvalidArtifactRefError``).

``ArtifactStore`` runs the backend's coroutines without an event loop (a backend over a
blocking driver never suspends), ``AsyncArtifactStore`` awaits them. Here: the directory stores
``LocalArtifactStore`` and ``AsyncLocalArtifactStore``; PostgreSQL and Redis stores are in
``turnout.integrations.artifacts_postgres`` and ``turnout.integrations.artifacts_redis``.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from turnout.core import _artifact_rules as rules
from turnout.core._artifact_files import DirectoryBackend
from turnout.core._artifact_ref import ArtifactRef
from turnout.core._artifact_rules import ArtifactBackend, Data
from turnout.core.engine import drive
from turnout.core.errors import ArtifactError

__all__ = [
    "ArtifactBackend",
    "ArtifactRef",
    "ArtifactStore",
    "AsyncArtifactStore",
    "AsyncLocalArtifactStore",
    "Data",
    "LocalArtifactStore",
    "LocalFileSystemArtifactStore",
]

T = TypeVar("T")


class ArtifactStore:
    """A store of blobs by digest over an ``ArtifactBackend`` whose coroutines never suspend.

    Args:
        backend: where the bytes go (a directory, a database table, Redis keys).
    """

    def __init__(self, backend: ArtifactBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.describe()})"

    def is_async(self) -> bool:
        """``False``: call its methods without ``await`` (Burr's ``is_async``)."""
        return False

    def put(
        self, data: Data, *, media_type: str | None = None, name: str | None = None
    ) -> ArtifactRef:
        """Store ``data`` (bytes, or a binary file object read to its end) and return its ref;
        the same bytes put twice are stored once. ``media_type`` and ``name`` go on the ref."""
        return drive(rules.put(self.backend, rules.bytes_of(data), media_type, name))

    def get(self, ref: ArtifactRef, *, verify: bool = True) -> bytes:
        """The bytes of ``ref``, checked against its digest and size
        (``ArtifactIntegrityError`` if they are damaged, ``ArtifactNotFoundError`` if absent).
        ``verify=False`` skips the check (Burr's option): only for bytes you trust."""
        return drive(rules.get(self.backend, ref, verify))

    def open(self, ref: ArtifactRef) -> BinaryIO:
        """A binary file object reading the bytes of ``ref``, checked before it is returned
        (close it when done). This store reads the blob into memory; ``LocalArtifactStore``
        streams it from disk."""
        return io.BytesIO(self.get(ref))

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether the store holds the blob of ``ref`` (not whether it is intact)."""
        return drive(rules.exists(self.backend, ref))

    def delete(self, ref: ArtifactRef) -> bool:
        """Remove the blob of ``ref``; whether there was one. States holding the ref cannot
        get it back any more: delete only what no kept state refers to."""
        return drive(rules.delete(self.backend, ref))

    def put_text(
        self,
        text: str,
        *,
        encoding: str = "utf-8",
        media_type: str | None = None,
        name: str | None = None,
    ) -> ArtifactRef:
        """Store ``text`` encoded with ``encoding`` (media type ``text/plain; charset=...``)."""
        return self.put(
            text.encode(encoding), media_type=rules.text_type(media_type, encoding), name=name
        )

    def get_text(self, ref: ArtifactRef, *, encoding: str = "utf-8") -> str:
        """The text ``put_text`` stored."""
        return self.get(ref).decode(encoding)

    def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        media_type: str | None = None,
        name: str | None = None,
    ) -> ArtifactRef:
        """Store the file at ``path``; ``media_type`` defaults to a guess from its suffix and
        ``name`` to its file name."""
        file, kind, label = rules.file_meta(path, media_type, name)
        with file.open("rb") as source:
            return self.put(source, media_type=kind, name=label)

    def get_file(self, ref: ArtifactRef, path: str | os.PathLike[str]) -> Path:
        """Write the (checked) bytes of ``ref`` to the file ``path``; return its path."""
        target = Path(path)
        with self.open(ref) as source, target.open("wb") as out:
            _copy(source, out)
        return target

    def put_artifact(
        self, data: bytes, media_type: str | None = None, key: str | None = None
    ) -> ArtifactRef:
        """Burr's ``put_artifact``: ``put(data, media_type=...)``. ``key`` may only be the
        digest: turnout's stores are content-addressed."""
        return rules.key_must_be_digest(key, self.put(data, media_type=media_type))

    def get_artifact(self, ref: ArtifactRef, verify: bool = True) -> bytes:
        """Burr's ``get_artifact``: ``get(ref, verify=verify)``."""
        return self.get(ref, verify=verify)

    def close(self) -> None:
        """Release what the store opened (a connection from a connection string); nothing
        here. Stores over a database override it."""


class AsyncArtifactStore:
    """``ArtifactStore`` for async code: the same methods, awaited, over a backend that may
    suspend (an async database driver, or a thread)."""

    def __init__(self, backend: ArtifactBackend) -> None:
        self.backend = backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.describe()})"

    def is_async(self) -> bool:
        """``True``: await its methods (Burr's ``is_async``)."""
        return True

    async def put(
        self, data: Data, *, media_type: str | None = None, name: str | None = None
    ) -> ArtifactRef:
        """``ArtifactStore.put``, awaited."""
        return await rules.put(self.backend, rules.bytes_of(data), media_type, name)

    async def get(self, ref: ArtifactRef, *, verify: bool = True) -> bytes:
        """``ArtifactStore.get``, awaited."""
        return await rules.get(self.backend, ref, verify)

    async def open(self, ref: ArtifactRef) -> BinaryIO:
        """``ArtifactStore.open``, awaited: the checked bytes in a file object."""
        return io.BytesIO(await self.get(ref))

    async def exists(self, ref: ArtifactRef) -> bool:
        """``ArtifactStore.exists``, awaited."""
        return await rules.exists(self.backend, ref)

    async def delete(self, ref: ArtifactRef) -> bool:
        """``ArtifactStore.delete``, awaited."""
        return await rules.delete(self.backend, ref)

    async def put_text(
        self,
        text: str,
        *,
        encoding: str = "utf-8",
        media_type: str | None = None,
        name: str | None = None,
    ) -> ArtifactRef:
        """``ArtifactStore.put_text``, awaited."""
        kind = rules.text_type(media_type, encoding)
        return await self.put(text.encode(encoding), media_type=kind, name=name)

    async def get_text(self, ref: ArtifactRef, *, encoding: str = "utf-8") -> str:
        """``ArtifactStore.get_text``, awaited."""
        return (await self.get(ref)).decode(encoding)

    async def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        media_type: str | None = None,
        name: str | None = None,
    ) -> ArtifactRef:
        """``ArtifactStore.put_file``, awaited (the file is read in a thread)."""
        file, kind, label = rules.file_meta(path, media_type, name)
        data = await asyncio.to_thread(file.read_bytes)
        return await self.put(data, media_type=kind, name=label)

    async def get_file(self, ref: ArtifactRef, path: str | os.PathLike[str]) -> Path:
        """``ArtifactStore.get_file``, awaited (the file is written in a thread)."""
        target = Path(path)
        data = await self.get(ref)
        await asyncio.to_thread(target.write_bytes, data)
        return target

    async def put_artifact(
        self, data: bytes, media_type: str | None = None, key: str | None = None
    ) -> ArtifactRef:
        """Burr's ``put_artifact``, awaited."""
        return rules.key_must_be_digest(key, await self.put(data, media_type=media_type))

    async def get_artifact(self, ref: ArtifactRef, verify: bool = True) -> bytes:
        """Burr's ``get_artifact``, awaited."""
        return await self.get(ref, verify=verify)

    async def close(self) -> None:
        """Release what the store opened (a connection from a connection string); nothing
        here. Stores over a database override it."""


def _copy(source: BinaryIO, out: BinaryIO) -> None:
    while chunk := source.read(1 << 20):
        out.write(chunk)


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local directory: ``root/sha256/ab/cdef...`` (the digest, fanned out by its
    first two characters). A write goes to a temporary file under ``root``, is flushed to disk
    (``fsync``) and renamed into place, so a crash never leaves a partial blob under a digest.
    File objects are streamed: ``put`` hashes while copying, ``open`` checks the file before
    returning it; neither holds the blob in memory.

    Args:
        root: the directory (created if missing). Share it between processes and machines
            through a shared disk only; otherwise use the PostgreSQL or Redis store.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.files = DirectoryBackend(root)
        super().__init__(self.files)

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self.files.root

    def put(
        self, data: Data, *, media_type: str | None = None, name: str | None = None
    ) -> ArtifactRef:
        if not callable(getattr(data, "read", None)):
            return super().put(data, media_type=media_type, name=name)
        try:
            digest, size = self.files.write_stream(cast(BinaryIO, data))
        except (ArtifactError, TypeError):
            raise
        except Exception as exc:
            raise rules.failed(self.files, "write", "(streamed)", exc) from exc
        return ArtifactRef(digest=digest, size_bytes=size, media_type=media_type, name=name)

    def open(self, ref: ArtifactRef) -> BinaryIO:
        digest = rules.checked(ref)
        try:
            opened = self.files.open_hashed(digest)
        except Exception as exc:
            raise rules.failed(self.files, "read", digest, exc) from exc
        if opened is None:
            raise rules.not_found(self.files, ref)
        source, actual, size = opened
        try:
            rules.check_hash(ref, actual, size, self.files.describe(digest))
        except BaseException:
            source.close()
            raise
        return source


LocalFileSystemArtifactStore = LocalArtifactStore
"""Burr's name (``burr.core.artifacts.LocalFileSystemArtifactStore(root_dir)``)."""


class _InThreads:
    """An ``ArtifactBackend`` running a never-suspending backend's coroutines in a thread, so
    file I/O does not block the event loop."""

    def __init__(self, inner: ArtifactBackend) -> None:
        self.inner = inner

    def describe(self, digest: str | None = None) -> str:
        return self.inner.describe(digest)

    async def _run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return await asyncio.to_thread(lambda: drive(make()))

    async def write(self, digest: str, data: bytes) -> None:
        await self._run(lambda: self.inner.write(digest, data))

    async def read(self, digest: str) -> bytes | None:
        return await self._run(lambda: self.inner.read(digest))

    async def contains(self, digest: str) -> bool:
        return await self._run(lambda: self.inner.contains(digest))

    async def remove(self, digest: str) -> bool:
        return await self._run(lambda: self.inner.remove(digest))


class AsyncLocalArtifactStore(AsyncArtifactStore):
    """``LocalArtifactStore`` for async code: the same directory layout (the two can share a
    directory), every file operation in a thread (``asyncio.to_thread``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.local = LocalArtifactStore(root)
        super().__init__(_InThreads(self.local.files))

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self.local.root

    async def put(
        self, data: Data, *, media_type: str | None = None, name: str | None = None
    ) -> ArtifactRef:
        return await asyncio.to_thread(self.local.put, data, media_type=media_type, name=name)

    async def open(self, ref: ArtifactRef) -> BinaryIO:
        return await asyncio.to_thread(self.local.open, ref)

    async def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        media_type: str | None = None,
        name: str | None = None,
    ) -> ArtifactRef:
        return await asyncio.to_thread(self.local.put_file, path, media_type=media_type, name=name)

    async def get_file(self, ref: ArtifactRef, path: str | os.PathLike[str]) -> Path:
        return await asyncio.to_thread(self.local.get_file, ref, path)

"""The directory behind ``LocalArtifactStore``: blobs as files named by their digest.

Layout: ``root/sha256/ab/cdef...`` (the first two hex characters fan the files out over 256
directories). Every path is built from a digest the store checked to be 64 hex characters, so
no path leaves ``root``. A write goes to a temporary file beside its target, is flushed to disk,
renamed into place (atomic on POSIX and Windows) and the directory entry flushed too, so after a
crash a digest names the whole blob or nothing; a leftover ``.tmp-*`` file is only litter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["DirectoryBackend"]

_CHUNK = 1 << 20


class DirectoryBackend:
    """An ``ArtifactBackend`` over a local directory; its coroutines never suspend."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def describe(self, digest: str | None = None) -> str:
        if digest is None:
            return f"the artifact directory '{self.root}'"
        return f"the file '{self.path(digest)}'"

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest[2:]

    # -- the backend protocol ----------------------------------------------------------------------

    async def write(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        self._land(target, lambda out: out.write(data))

    async def read(self, digest: str) -> bytes | None:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            return None

    async def contains(self, digest: str) -> bool:
        return self.path(digest).is_file()

    async def remove(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    # -- streaming ---------------------------------------------------------------------------------

    def write_stream(self, source: BinaryIO) -> tuple[str, int]:
        """Copy ``source`` to its end into a temporary file while hashing it, then rename the
        file to the digest's path (or drop it when that blob exists). Returns (digest, size)."""
        incoming = self.root / "sha256" / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        size = 0
        fd, temporary = tempfile.mkstemp(dir=incoming, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    if not isinstance(chunk, (bytes, bytearray)):
                        raise TypeError(
                            f"put() read {type(chunk).__qualname__} from the file object; open "
                            f"the file in binary mode ('rb'), or put text with "
                            f"store.put_text(...)"
                        )
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            target = self.path(digest)
            if target.exists():
                os.unlink(temporary)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                # incoming/ and the target's directory are on one file system: an atomic rename.
                os.replace(temporary, target)
                _sync_directory(target.parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return digest, size

    def open_hashed(self, digest: str) -> tuple[BinaryIO, str, int] | None:
        """The blob's file opened for reading (at its start), with the digest and size of what
        it holds now, read through once; ``None`` when there is no such file. The caller
        compares and closes."""
        try:
            source: BinaryIO = self.path(digest).open("rb")
        except FileNotFoundError:
            return None
        try:
            hasher = hashlib.sha256()
            size = 0
            while chunk := source.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
            source.seek(0)
        except BaseException:
            source.close()
            raise
        return source, hasher.hexdigest(), size

    # -- helpers -----------------------------------------------------------------------------------

    def _land(self, target: Path, fill: Callable[[BinaryIO], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Flush a rename to disk (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

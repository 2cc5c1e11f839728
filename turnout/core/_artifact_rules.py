"""The rules every artifact store keeps, written once for ``ArtifactStore`` and
``AsyncArtifactStore`` (``turnout.core.artifacts``): the ``ArtifactBackend`` protocol, hashing,
checking refs and bytes, and the errors naming the store and the ref. Not public API: import
from ``turnout.core.artifacts``."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from turnout.core._artifact_ref import ArtifactRef, check_digest
from turnout.core.errors import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidArtifactRefError,
)

__all__ = ["ArtifactBackend", "Data"]

T = TypeVar("T")
Data = bytes | bytearray | memoryview | BinaryIO
"""What ``put`` takes: bytes, or a binary file object read to its end."""

TEXT_TYPE = "text/plain; charset=utf-8"


class ArtifactBackend(Protocol):
    """Raw blobs by digest, for ``ArtifactStore``/``AsyncArtifactStore``; the digests it gets
    are checked already. Over a blocking driver its coroutines must never suspend (then the
    sync store runs them without an event loop). Implement it to add a storage service."""

    def describe(self, digest: str | None = None) -> str:
        """Where the store is, or where the blob of ``digest`` is, for messages."""
        ...

    async def write(self, digest: str, data: bytes) -> None:
        """Store ``data`` under ``digest`` atomically: readers see all of it or nothing.
        Writing a digest that exists must succeed (and may leave the blob as it is)."""
        ...

    async def read(self, digest: str) -> bytes | None:
        """The bytes stored under ``digest``, or ``None``."""
        ...

    async def contains(self, digest: str) -> bool:
        """Whether something is stored under ``digest``."""
        ...

    async def remove(self, digest: str) -> bool:
        """Remove the blob of ``digest``; whether there was one."""
        ...


def bytes_of(data: Any) -> bytes:
    """``data`` as bytes: bytes-like values as they are, a binary file object read to its end."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    read = getattr(data, "read", None)
    if callable(read):
        content = read()
        if isinstance(content, (bytes, bytearray)):
            return bytes(content)
        raise TypeError(
            f"put() read {type(content).__qualname__} from the file object; open the file in "
            f"binary mode ('rb'), or put text with store.put_text(...)"
        )
    hint = " (text: use store.put_text(...))" if isinstance(data, str) else ""
    raise TypeError(
        f"put() takes bytes or a binary file object, not {type(data).__qualname__}{hint}"
    )


def checked(ref: object) -> str:
    """The digest of ``ref``, checked: the only way a key reaches a backend."""
    if not isinstance(ref, ArtifactRef):
        raise InvalidArtifactRefError(
            f"artifact stores take the ArtifactRef that put() returned, not "
            f"{type(ref).__qualname__}"
        )
    return check_digest(ref.digest)


def verified(ref: ArtifactRef, data: bytes, where: str) -> bytes:
    check_hash(ref, hashlib.sha256(data).hexdigest(), len(data), where)
    return data


def check_hash(ref: ArtifactRef, actual: str, size: int, where: str) -> None:
    if actual != ref.digest or size != ref.size_bytes:
        raise ArtifactIntegrityError(
            f"the bytes stored for artifact {ref.digest} ({ref.size_bytes:,} bytes expected) "
            f"in {where} are damaged: {size:,} bytes with digest {actual}. Nothing was "
            f"returned. Put the original bytes again after store.delete(ref), or restore them "
            f"from a backup"
        )


def failed(backend: ArtifactBackend, what: str, digest: str, exc: Exception) -> ArtifactError:
    said = " ".join(str(exc).split())
    return ArtifactError(
        f"{backend.describe()} failed to {what} artifact {digest}: {type(exc).__name__}: {said}"
    )


async def call(backend: ArtifactBackend, what: str, digest: str, coro: Coroutine[Any, Any, T]) -> T:
    """Await a backend's ``coro``; its failure becomes an ``ArtifactError`` naming the store."""
    try:
        return await coro
    except ArtifactError:
        raise
    except Exception as exc:
        raise failed(backend, what, digest, exc) from exc


async def put(
    backend: ArtifactBackend, data: bytes, media_type: str | None, name: str | None
) -> ArtifactRef:
    """Hash ``data``, write it unless the backend has it, and return its ref."""
    digest = hashlib.sha256(data).hexdigest()
    ref = ArtifactRef(digest=digest, size_bytes=len(data), media_type=media_type, name=name)
    # Checking first spares sending the bytes again; a write racing another is harmless (the
    # backend's write of an existing digest succeeds).
    if not await call(backend, "look up", digest, backend.contains(digest)):
        await call(backend, "write", digest, backend.write(digest, data))
    return ref


async def get(backend: ArtifactBackend, ref: ArtifactRef, verify: bool) -> bytes:
    """The bytes of ``ref``, checked against it unless ``verify`` is false."""
    digest = checked(ref)
    data = await call(backend, "read", digest, backend.read(digest))
    if data is None:
        raise not_found(backend, ref)
    return verified(ref, data, backend.describe(digest)) if verify else data


def not_found(backend: ArtifactBackend, ref: ArtifactRef) -> ArtifactNotFoundError:
    return ArtifactNotFoundError(
        f"artifact {ref.digest} ({ref.name or 'no name'}, {ref.size_bytes:,} bytes) is not in "
        f"{backend.describe()}: it was deleted, or put into another store; pass the store it "
        f"was put into"
    )


async def exists(backend: ArtifactBackend, ref: ArtifactRef) -> bool:
    digest = checked(ref)
    return await call(backend, "look up", digest, backend.contains(digest))


async def delete(backend: ArtifactBackend, ref: ArtifactRef) -> bool:
    digest = checked(ref)
    return await call(backend, "delete", digest, backend.remove(digest))


def text_type(media_type: str | None, encoding: str) -> str:
    if media_type is not None:
        return media_type
    return TEXT_TYPE if encoding == "utf-8" else f"text/plain; charset={encoding}"


def file_meta(
    path: str | os.PathLike[str], media_type: str | None, name: str | None
) -> tuple[Path, str, str]:
    file = Path(path)
    guessed = media_type or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return file, guessed, name if name is not None else file.name


def key_must_be_digest(key: str | None, ref: ArtifactRef) -> ArtifactRef:
    if key is not None and key != ref.digest:
        raise InvalidArtifactRefError(
            f"put_artifact(key={key[:80]!r}): turnout's artifact stores are content-addressed, "
            f"the key is always the digest ({ref.digest}); leave key out. The bytes were stored"
        )
    return ref

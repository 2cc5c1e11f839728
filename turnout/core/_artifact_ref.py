"""``ArtifactRef``: the small record a state keeps in place of a large value.

It lives apart from ``turnout.core.artifacts`` (the stores) because the serde builds refs from
stored data, and the serde must not import the stores. Import it from
``turnout.core.artifacts``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.core.errors import InvalidArtifactRefError

if TYPE_CHECKING:
    from turnout.core.artifacts import ArtifactStore, AsyncArtifactStore

__all__ = ["ArtifactRef", "check_digest"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("digest", "size_bytes", "media_type", "name")


def check_digest(digest: object) -> str:
    """``digest`` if it is a SHA-256 hex digest (64 lowercase hex characters); otherwise an
    ``InvalidArtifactRefError``. Stores build every key and path from a checked digest, so no
    ref can name anything outside the store."""
    if type(digest) is not str or not _DIGEST.fullmatch(digest):
        shown = repr(digest[:80]) if isinstance(digest, str) else type(digest).__qualname__
        raise InvalidArtifactRefError(
            f"an artifact digest must be 64 lowercase hex characters (a SHA-256 hexdigest), "
            f"not {shown}; take refs from store.put(...), never build them from user input"
        )
    return digest


@dataclass(frozen=True, kw_only=True, slots=True)
class ArtifactRef:
    """A content-addressed reference to a blob in an artifact store: what a state holds instead
    of the blob. Persisters and trackers save it as a small tagged object (about 150 bytes);
    loading it back never reads the blob.

    Attributes:
        digest: the SHA-256 hex digest of the bytes, which is also their key in every store.
        size_bytes: how many bytes the blob has (Burr's field name).
        media_type: the MIME type given to ``put`` (``"image/png"``), for readers and the UI.
        name: a name given to ``put`` (a file name, say), for people; never a key.
    """

    digest: str
    size_bytes: int
    media_type: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        check_digest(self.digest)
        if type(self.size_bytes) is not int or self.size_bytes < 0:
            raise InvalidArtifactRefError(
                f"ArtifactRef(size_bytes=...) must be a non-negative int, not "
                f"{self.size_bytes!r}; take refs from store.put(...)"
            )
        for field in ("media_type", "name"):
            value = getattr(self, field)
            if value is not None and type(value) is not str:
                raise InvalidArtifactRefError(
                    f"ArtifactRef({field}=...) must be a str or None, not "
                    f"{type(value).__qualname__}"
                )

    @property
    def key(self) -> str:
        """The key the blob is stored under: its digest (Burr's ``ArtifactRef.key``; turnout's
        stores are content-addressed only)."""
        return self.digest

    def read(self, store: ArtifactStore, verify: bool = True) -> bytes:
        """The blob's bytes from ``store`` (Burr's name): ``store.get_artifact(self)``."""
        return store.get_artifact(self, verify=verify)

    async def aread(self, store: AsyncArtifactStore, verify: bool = True) -> bytes:
        """``read`` from an async store."""
        return await store.get_artifact(self, verify=verify)

    def to_json(self) -> dict[str, Any]:
        """The stored form: the fields, leaving out those that are ``None``."""
        data: dict[str, Any] = {"digest": self.digest, "size_bytes": self.size_bytes}
        if self.media_type is not None:
            data["media_type"] = self.media_type
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_json(cls, data: Any) -> ArtifactRef:
        """The ref ``to_json`` stored as ``data``, checked like a new one. Stored data is
        untrusted: anything else is an ``InvalidArtifactRefError`` (a ``ValueError``)."""
        if type(data) is not dict:
            raise InvalidArtifactRefError(
                f"a stored artifact ref must be an object, not {type(data).__qualname__}"
            )
        unknown = [key for key in data if key not in _FIELDS]
        if unknown:
            raise InvalidArtifactRefError(
                f"a stored artifact ref has no field {str(unknown[0])[:80]!r}"
            )
        if "digest" not in data or "size_bytes" not in data:
            raise InvalidArtifactRefError("a stored artifact ref needs 'digest' and 'size_bytes'")
        return cls(**data)

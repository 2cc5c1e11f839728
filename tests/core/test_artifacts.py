"""``turnout.core.artifacts`` beyond the store contract (``tests/artifacts``): the ref record and
its stored form in the serde, the local directory's layout, atomic writes and streaming."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from turnout.core.artifacts import (
    ArtifactRef,
    AsyncLocalArtifactStore,
    LocalArtifactStore,
    LocalFileSystemArtifactStore,
)
from turnout.core.errors import ArtifactError, InvalidArtifactRefError, SerdeError
from turnout.core.serde import DEFAULT_SERDE, TAG, Serde

DIGEST = hashlib.sha256(b"x").hexdigest()


# -- the ref ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"digest": "../x", "size_bytes": 1},
        {"digest": DIGEST.upper(), "size_bytes": 1},
        {"digest": DIGEST, "size_bytes": -1},
        {"digest": DIGEST, "size_bytes": True},
        {"digest": DIGEST, "size_bytes": 1.0},
        {"digest": DIGEST, "size_bytes": 1, "media_type": 3},
        {"digest": DIGEST, "size_bytes": 1, "name": b"x"},
    ],
    ids=["traversal", "upper-case", "negative-size", "bool-size", "float-size", "media", "name"],
)
def test_a_ref_with_a_field_that_cannot_name_a_blob_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidArtifactRefError):
        ArtifactRef(**fields)


def test_a_ref_key_is_its_digest_as_on_burr() -> None:
    assert ArtifactRef(digest=DIGEST, size_bytes=1).key == DIGEST


def test_a_ref_is_stored_as_a_small_tagged_object_without_none_fields() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=5_000_000, media_type="image/png")
    assert DEFAULT_SERDE.encode(ref) == {
        TAG: "artifact",
        "v": {"digest": DIGEST, "size_bytes": 5_000_000, "media_type": "image/png"},
    }
    named = ArtifactRef(digest=DIGEST, size_bytes=1, media_type="image/png", name="chart.png")
    assert len(DEFAULT_SERDE.dumps(named)) < 200


def test_a_ref_round_trips_through_any_serde_without_registration() -> None:
    ref = ArtifactRef(digest=DIGEST, size_bytes=3, name="n")
    value = {"refs": [ref, (ref,)], "by_ref": {ref: 1}}
    assert Serde().loads(Serde().dumps(value)) == value


@pytest.mark.parametrize(
    "stored",
    [
        {"digest": "../../etc/passwd", "size_bytes": 1},
        {"digest": DIGEST},
        {"digest": DIGEST, "size_bytes": "1"},
        {"digest": DIGEST, "size_bytes": 1, "path": "/etc/passwd"},
        [DIGEST, 1],
    ],
    ids=["traversal", "no-size", "text-size", "unknown-field", "not-an-object"],
)
def test_malformed_stored_refs_are_refused_with_their_path(stored: Any) -> None:
    text = json.dumps({"chart": {TAG: "artifact", "v": stored}})
    with pytest.raises(SerdeError, match=r"\$\.chart\.v: not a stored artifact value"):
        DEFAULT_SERDE.loads(text)


# -- the local directory ---------------------------------------------------------------------------


def test_blobs_live_under_root_sha256_and_the_first_two_hex_characters(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    ref = store.put(b"x")
    assert (tmp_path / "a" / "sha256" / DIGEST[:2] / DIGEST[2:]).read_bytes() == b"x"
    assert store.root == tmp_path / "a"
    assert ref.digest == DIGEST


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    store.put(b"x")
    store.put(io.BytesIO(b"y" * 3_000_000))
    store.put(b"x")
    assert not list(tmp_path.rglob(".tmp-*"))


class _Broken(io.RawIOBase):
    """A stream that fails after its first megabyte."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            raise OSError("the network went away")
        self.sent = 1 << 20
        return b"z" * self.sent


def test_a_stream_failing_midway_leaves_neither_a_blob_nor_a_temporary_file(
    tmp_path: Path,
) -> None:
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="the network went away") as caught:
        store.put(_Broken())  # type: ignore[arg-type]
    assert isinstance(caught.value.__cause__, OSError)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_streamed_put_is_hashed_while_copied(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    data = b"abc" * 1_000_000
    ref = store.put(io.BytesIO(data), media_type="text/plain", name="abc.txt")
    assert ref == ArtifactRef(
        digest=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        media_type="text/plain",
        name="abc.txt",
    )
    assert store.put(io.BytesIO(data)).digest == ref.digest
    assert store.get(ref) == data


def test_open_streams_the_checked_file_from_disk(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.put(b"abc")
    with store.open(ref) as reader:
        assert reader.read(2) == b"ab"
        assert getattr(reader, "name", "").endswith(ref.digest[2:])


def test_a_directory_failure_names_the_store_and_the_ref(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.put(b"x")
    store.files.path(ref.digest).unlink()
    store.files.path(ref.digest).mkdir()  # a directory where the file should be
    with pytest.raises(
        ArtifactError, match=f"artifact directory .* failed to read artifact {DIGEST}"
    ):
        store.get(ref)


def test_sync_and_async_local_stores_share_a_directory(tmp_path: Path) -> None:
    ref = LocalArtifactStore(tmp_path).put(b"shared")

    async def main() -> bytes:
        return await AsyncLocalArtifactStore(tmp_path).get(ref)

    assert asyncio.run(main()) == b"shared"


def test_burr_local_file_system_store_name_is_the_local_store() -> None:
    assert LocalFileSystemArtifactStore is LocalArtifactStore

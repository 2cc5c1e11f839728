"""The contract every artifact store keeps, one test body run on each store, sync and async:
round trips, storing the same bytes once, refusing damaged bytes, bad refs and missing blobs,
and a 5 MB value."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path

import pytest

from tests.artifacts.conftest import StoreHarness
from turnout.core.artifacts import ArtifactRef
from turnout.core.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidArtifactRefError,
)

BLOB = bytes(range(256)) * 4


def forged(digest: str, size_bytes: int = 1) -> ArtifactRef:
    """A ref carrying a digest that ``ArtifactRef(...)`` itself would refuse."""
    ref = ArtifactRef(digest="0" * 64, size_bytes=size_bytes)
    object.__setattr__(ref, "digest", digest)
    return ref


def test_put_returns_a_ref_describing_the_bytes_and_get_returns_them(store: StoreHarness) -> None:
    ref = store.call("put", BLOB, media_type="application/octet-stream", name="blob.bin")
    assert ref == ArtifactRef(
        digest=hashlib.sha256(BLOB).hexdigest(),
        size_bytes=len(BLOB),
        media_type="application/octet-stream",
        name="blob.bin",
    )
    assert store.call("get", ref) == BLOB
    assert store.call("exists", ref)


def test_putting_the_same_bytes_twice_stores_them_once(store: StoreHarness) -> None:
    first = store.call("put", BLOB)
    second = store.call("put", bytearray(BLOB), name="again")
    assert second.digest == first.digest
    assert second.name == "again"  # the ref carries what this put was given
    assert store.count() == 1
    assert store.call("get", first) == BLOB


def test_damaged_bytes_are_refused_naming_the_ref_and_where_they_are(
    store: StoreHarness,
) -> None:
    ref = store.call("put", BLOB)
    store.damage(ref, BLOB[:-1] + b"!")
    for method in ("get", "open", "get_artifact"):
        with pytest.raises(ArtifactIntegrityError) as caught:
            store.call(method, ref)
        message = str(caught.value)
        assert ref.digest in message
        assert "damaged" in message
        assert "store.delete(ref)" in message
    place = {"local": "sha256", "postgres": store.name, "redis": f"{store.name}:artifact:"}
    assert place[store.kind] in message


def test_bytes_of_another_length_are_refused_too(store: StoreHarness) -> None:
    ref = store.call("put", BLOB)
    store.damage(ref, BLOB + b"tail")
    with pytest.raises(ArtifactIntegrityError, match=f"{len(BLOB) + 4:,} bytes"):
        store.call("get", ref)


def test_a_damaged_blob_can_be_replaced_after_delete(store: StoreHarness) -> None:
    ref = store.call("put", BLOB)
    store.damage(ref, b"junk")
    assert store.call("delete", ref)
    store.call("put", BLOB)
    assert store.call("get", ref) == BLOB


def test_verify_false_returns_the_bytes_unchecked(store: StoreHarness) -> None:
    ref = store.call("put", BLOB)
    store.damage(ref, b"junk")
    assert store.call("get", ref, verify=False) == b"junk"


@pytest.mark.parametrize(
    "digest",
    ["../../etc/passwd", "0" * 63, "0" * 65, "G" * 64, "A" * 64, "/" + "0" * 63, ""],
    ids=["traversal", "short", "long", "not-hex", "upper-case", "absolute", "empty"],
)
def test_refs_whose_digest_is_not_64_hex_characters_are_refused(
    store: StoreHarness, digest: str
) -> None:
    for method in ("get", "open", "exists", "delete"):
        with pytest.raises(InvalidArtifactRefError, match="64 lowercase hex"):
            store.call(method, forged(digest))
    assert store.count() == 0


def test_things_that_are_not_refs_are_refused(store: StoreHarness) -> None:
    for bad in ("0" * 64, {"digest": "0" * 64, "size_bytes": 1}, None):
        with pytest.raises(InvalidArtifactRefError, match="ArtifactRef that put"):
            store.call("get", bad)


def test_a_missing_blob_raises_not_found_naming_the_ref_and_the_store(
    store: StoreHarness,
) -> None:
    ref = ArtifactRef(digest=hashlib.sha256(b"never stored").hexdigest(), size_bytes=12, name="x")
    assert not store.call("exists", ref)
    for method in ("get", "open"):
        with pytest.raises(ArtifactNotFoundError) as caught:
            store.call(method, ref)
        assert isinstance(caught.value, FileNotFoundError)  # as Burr's stores raise
        assert ref.digest in str(caught.value)
        assert "put into another store" in str(caught.value)


def test_delete_removes_the_blob_and_says_whether_there_was_one(store: StoreHarness) -> None:
    ref = store.call("put", BLOB)
    assert store.call("delete", ref) is True
    assert store.call("delete", ref) is False
    assert not store.call("exists", ref)
    assert store.count() == 0


def test_a_5_mb_value_round_trips(store: StoreHarness) -> None:
    big = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)
    ref = store.call("put", big, media_type="application/octet-stream")
    assert ref.size_bytes == 5 * 1024 * 1024
    assert store.call("get", ref) == big
    with store.call("open", ref) as reader:
        assert reader.read() == big


def test_an_empty_blob_round_trips(store: StoreHarness) -> None:
    ref = store.call("put", b"")
    assert ref.size_bytes == 0
    assert store.call("get", ref) == b""


def test_a_binary_file_object_is_read_to_its_end(store: StoreHarness) -> None:
    ref = store.call("put", io.BytesIO(BLOB), name="stream")
    assert ref.digest == hashlib.sha256(BLOB).hexdigest()
    assert store.call("get", ref) == BLOB


def test_text_and_text_file_objects_are_refused_with_the_fix(store: StoreHarness) -> None:
    with pytest.raises(TypeError, match="put_text"):
        store.call("put", "some text")
    with pytest.raises(TypeError, match="binary mode"):
        store.call("put", io.StringIO("some text"))
    assert store.count() == 0


def test_text_round_trips_with_a_text_media_type(store: StoreHarness) -> None:
    ref = store.call("put_text", "grüße")
    assert ref.media_type == "text/plain; charset=utf-8"
    assert store.call("get_text", ref) == "grüße"
    latin = store.call("put_text", "grüße", encoding="latin-1")
    assert latin.media_type == "text/plain; charset=latin-1"
    assert store.call("get_text", latin, encoding="latin-1") == "grüße"


def test_a_file_round_trips_with_its_name_and_guessed_media_type(
    store: StoreHarness, tmp_path: Path
) -> None:
    source = tmp_path / "report.pdf"
    source.write_bytes(BLOB)
    ref = store.call("put_file", source)
    assert (ref.name, ref.media_type) == ("report.pdf", "application/pdf")
    target = store.call("get_file", ref, tmp_path / "copy.pdf")
    assert target.read_bytes() == BLOB


def test_burr_names_put_artifact_get_artifact_and_ref_read(store: StoreHarness) -> None:
    ref = store.call("put_artifact", BLOB, "image/png")
    assert (ref.key, ref.media_type) == (ref.digest, "image/png")
    assert store.call("get_artifact", ref) == BLOB
    read = ref.aread if store.is_async else ref.read
    assert store.run(read(store.store)) == BLOB
    assert store.store.is_async() is store.is_async
    assert store.call("put_artifact", BLOB, "image/png", key=ref.digest) == ref
    with pytest.raises(InvalidArtifactRefError, match="content-addressed"):
        store.call("put_artifact", BLOB, key="my-key")


def test_refs_are_equal_hashable_and_immutable(store: StoreHarness) -> None:
    ref = store.call("put", BLOB)
    assert {ref, store.call("put", BLOB)} == {ref}
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.digest = "0" * 64

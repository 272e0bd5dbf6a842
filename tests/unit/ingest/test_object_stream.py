"""ObjectStream: a file over a body still arriving — same bytes and pixels as a finished download, and a
broken transfer is always a retryable error, never a "corrupt image"."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import (
    FlexibleChecksumError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.response import StreamingBody
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_classifier.exceptions import ImageError, ImageTooLargeError, TransientSourceError
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.ingest.object_stream import ObjectStream
from clip_classifier.model.manifest import load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from tests.helpers import BreakingBody

FIXTURES = sorted((REPO_ROOT / "tests" / "fixtures" / "images").iterdir())
PRE = Preprocessor(load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").transform)

BODY_ERRORS = {
    "read timeout": ReadTimeoutError(endpoint_url="http://s3"),
    "connection reset": ConnectionResetError(104, "Connection reset by peer"),
    "stream error": ResponseStreamingError(error="IncompleteRead(1000 bytes read)"),
    "checksum": FlexibleChecksumError(error_msg="Expected checksum did not match"),
}


def stream(data: bytes, *, block_size: int = 4096, max_bytes: int = 1 << 30) -> ObjectStream:
    return ObjectStream(io.BytesIO(data), where="s3://b/k", max_bytes=max_bytes, block_size=block_size)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 300)),
        st.tuples(st.just("seek_set"), st.integers(0, 600)),
        st.tuples(st.just("seek_cur"), st.integers(-100, 300)),
        st.tuples(st.just("seek_end"), st.integers(-300, 50)),
        st.tuples(st.just("readinto"), st.integers(0, 300)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=500), block_size=st.integers(1, 64), ops=operations)
def test_reads_and_seeks_behave_like_bytesio(
    data: bytes, block_size: int, ops: list[tuple[str, int]]
) -> None:
    ours, reference = stream(data, block_size=block_size), io.BytesIO(data)
    for op, n in ops:
        if op == "read":
            assert ours.read(n) == reference.read(n)
        elif op == "readinto":
            a, b = bytearray(n), bytearray(n)
            assert ours.readinto(a) == reference.readinto(b) and a == b
        else:
            whence = {"seek_set": io.SEEK_SET, "seek_cur": io.SEEK_CUR, "seek_end": io.SEEK_END}[op]
            target = {"seek_set": 0, "seek_cur": reference.tell(), "seek_end": len(data)}[op] + n
            if target < 0:
                with pytest.raises(ValueError):
                    ours.seek(n, whence)
                continue
            assert ours.seek(n, whence) == reference.seek(n, whence)
        assert ours.tell() == reference.tell()


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_decoding_from_the_stream_equals_decoding_the_downloaded_bytes(path: Path) -> None:
    data = path.read_bytes()
    whole, streamed = PRE(data), PRE(stream(data))
    assert streamed.path == whole.path and streamed.format == whole.format
    np.testing.assert_array_equal(streamed.pixels, whole.pixels)


@pytest.mark.parametrize("error", sorted(BODY_ERRORS))
@pytest.mark.parametrize("after", [0.0, 0.02, 0.5, 0.98])
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_a_broken_transfer_is_transient_never_a_bad_image(path: Path, after: float, error: str) -> None:
    data = path.read_bytes()
    cause = BODY_ERRORS[error]
    body = ObjectStream(
        BreakingBody(data, int(len(data) * after), cause),
        where="s3://b/k",
        max_bytes=1 << 30,
        block_size=4096,
    )
    with pytest.raises(TransientSourceError) as raised:
        PRE(body)
        body.drain()  # the few bytes after an image's end marker
    assert raised.value.__cause__ is cause
    assert "s3://b/k" in raised.value.message
    assert body.error is raised.value
    with pytest.raises(TransientSourceError):  # a broken transfer stays broken
        body.read(1)


def test_a_short_body_is_caught_by_the_sdk_length_check_on_drain() -> None:
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
    body = ObjectStream(
        StreamingBody(io.BytesIO(data[:-100]), len(data)), where="s3://b/k", max_bytes=1 << 30
    )
    with pytest.raises(TransientSourceError) as raised:
        PRE(body)
        body.drain()
    assert isinstance(raised.value.__cause__, IncompleteReadError)


def test_a_body_longer_than_the_limit_is_an_image_error() -> None:
    data = (REPO_ROOT / "tests" / "fixtures" / "images" / "large_rgb.jpg").read_bytes()
    with pytest.raises(ImageTooLargeError) as raised:
        PRE(stream(data, max_bytes=len(data) - 1))
    assert isinstance(raised.value, ImageError) and str(len(data) - 1) in raised.value.message


def test_close_closes_the_body_and_wait_time_is_counted() -> None:
    raw = io.BytesIO(b"x" * 10_000)
    body = ObjectStream(raw, where="s3://b/k", max_bytes=1 << 20, block_size=1000)
    assert body.drain() == 10_000 and body.wait_ms >= 0.0
    with body:
        pass
    assert raw.closed and body.closed

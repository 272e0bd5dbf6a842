"""The stored embedding's two layouts (int8, written now; float16, written before and still read): their
bytes, their round trip, what each costs in fidelity, and damage refused with the reason."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from bench.item_size import clip_like
from clip_classifier.exceptions import CorruptEmbeddingError, ModelOutputError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_local.paths import EXAMPLE_WEIGHTS

HEAD = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def vectors(count: int = 200, dim: int = 512, seed: int = 0) -> np.ndarray:
    """CLIP-like: roughly Gaussian, norms around 10, a few large components (the benchmark's set)."""
    return clip_like(count, dim, seed)


def test_float16_layout_and_round_trip() -> None:
    """Items written before the int8 layout keep reading exactly as they did."""
    x = vectors(1)[0]
    data = embedding_codec.encode(x, "float16")
    assert len(data) == embedding_codec.encoded_size(512, "float16") == 1032
    assert embedding_codec.dimension(data) == 512
    unit, norm = embedding_codec.decode(data, 512)
    assert norm == pytest.approx(float(np.linalg.norm(x.astype(np.float64))), rel=1e-7)
    assert unit.dtype == np.float32 and unit.shape == (512,)
    expected = (x / np.linalg.norm(x)).astype(np.float16).astype(np.float32)
    assert np.array_equal(unit, expected)
    features = embedding_codec.head_input(data, 512)
    assert features.shape == (1, 512) and np.array_equal(features[0], unit * np.float32(norm))


def test_int8_layout_and_round_trip() -> None:
    x = vectors(1)[0]
    data = embedding_codec.encode(x)
    assert len(data) == embedding_codec.encoded_size(512) == 521 and data[0] == 0x02
    assert embedding_codec.dimension(data) == 512
    steps = np.frombuffer(data, np.int8, count=512, offset=1)
    assert np.abs(steps).max() == 127  # the largest component uses the whole range
    unit, norm = embedding_codec.decode(data, 512)
    assert norm == pytest.approx(float(np.linalg.norm(x.astype(np.float64))), rel=1e-7)
    assert unit.dtype == np.float32 and np.linalg.norm(unit.astype(np.float64)) == pytest.approx(
        1.0, abs=1e-6
    )
    expected = (steps / np.linalg.norm(steps.astype(np.float64))).astype(np.float32)
    assert np.array_equal(unit, expected)


FIDELITY = {
    # layout: (least cosine to float32, largest probability change of the example head), measured:
    # float16 0.9999998 / 1.4e-7; int8 0.99929 / 2.0e-5 on these vectors (five outlier components each).
    "float16": (0.99999, 1e-5),
    "int8": (0.999, 1e-4),
}


@pytest.mark.parametrize("layout", sorted(FIDELITY))
def test_the_cost_of_each_layout_is_measured_small(layout: embedding_codec.Layout) -> None:
    """Cosine to float32 and the largest probability change of the example head, over 200 vectors."""
    x = vectors()
    decoded = np.concatenate([embedding_codec.head_input(embedding_codec.encode(v, layout), 512) for v in x])
    cosine = (x * decoded).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(decoded, axis=1)
    least_cosine, largest_change = FIDELITY[layout]
    assert cosine.min() >= least_cosine
    _, exact = HEAD.forward(x)
    _, rounded = HEAD.forward(decoded)
    assert np.abs(exact - rounded).max() <= largest_change


@pytest.mark.parametrize("layout", sorted(FIDELITY))
def test_round_trip_gives_what_a_rescore_decodes(layout: embedding_codec.Layout) -> None:
    x = vectors(3)
    for v in x:
        stored, features = embedding_codec.round_trip(v[None, :], layout)
        assert np.array_equal(features, embedding_codec.head_input(stored, 512))
        # The same bytes score the same, bit for bit: a rescore with the same head reproduces the result.
        assert HEAD.predict(features)[0] == HEAD.predict(embedding_codec.head_input(stored, 512))[0]


def test_float16_bytes_that_begin_with_the_int8_tag_still_read_as_float16() -> None:
    """1 in 256 float16 embeddings starts with the tag byte; the int8 layout's own CRC start tells them
    apart, so such an old item is neither refused nor misread."""
    found = 0
    for v in vectors(2000, seed=5):
        data = embedding_codec.encode(v, "float16")
        if data[0] == 0x02:
            found += 1
            assert embedding_codec.dimension(data) == 512
            unit, _ = embedding_codec.decode(data, 512)
            exact = v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))
            assert np.array_equal(unit, exact.astype(np.float16).astype(np.float32))
    assert found > 0


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-1], r"1031 bytes; 512 dimensions take 521 \(or 1032 as float16\)"),
        (lambda d: d + b"\0\0", "1034 bytes; 512 dimensions take 521"),
        (lambda d: bytes([d[0] ^ 0x10]) + d[1:], "fails its CRC-32 check"),
        (lambda d: d[:-4] + b"\0\0\0\0", "fails its CRC-32 check"),
        # Valid CRC, bad content: what only a writer bug (or a hand edit) could produce.
        (
            lambda d: _with_crc(np.full(512, np.nan, "<f2").tobytes() + d[1024:1028]),
            "not a finite unit vector",
        ),
        (lambda d: _with_crc(np.full(512, 0.1, "<f2").tobytes() + d[1024:1028]), "not a finite unit vector"),
        (lambda d: _with_crc(d[:1024] + struct.pack("<f", -1.0)), "positive norm"),
    ],
)
def test_float16_damage_is_refused_with_the_reason(damage: object, message: str) -> None:
    data = embedding_codec.encode(vectors(1)[0], "float16")
    broken = damage(data)  # type: ignore[operator]
    with pytest.raises(CorruptEmbeddingError, match=message):
        embedding_codec.decode(broken, 512)


def _with_int8_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body, 0x494E5438))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-1], "520 bytes; 512 dimensions take 521"),
        (lambda d: d[:1] + bytes([d[1] ^ 0x10]) + d[2:], "fails its CRC-32 check"),
        (lambda d: d[:-4] + b"\0\0\0\0", "fails its CRC-32 check"),
        # A float16 CRC over int8 bytes: the layouts' checks are not interchangeable.
        (lambda d: _with_crc(d[:-4]), "fails its CRC-32 check"),
        (lambda d: _with_int8_crc(b"\x07" + d[1:-4]), "unknown layout tag"),
        (lambda d: _with_int8_crc(b"\x02" + bytes(512) + d[513:517]), "not a non-zero vector"),
        (lambda d: _with_int8_crc(d[:513] + struct.pack("<f", -1.0)), "positive norm"),
        (lambda d: _with_int8_crc(d[:513] + struct.pack("<f", float("nan"))), "positive norm"),
    ],
)
def test_int8_damage_is_refused_with_the_reason(damage: object, message: str) -> None:
    data = embedding_codec.encode(vectors(1)[0])
    broken = damage(data)  # type: ignore[operator]
    with pytest.raises(CorruptEmbeddingError, match=message):
        embedding_codec.decode(broken, 512)


def test_no_dimension_gives_an_odd_length_and_zero_vectors_are_not_stored() -> None:
    with pytest.raises(CorruptEmbeddingError, match="which no dimension gives"):
        embedding_codec.dimension(b"\0" * 9)
    with pytest.raises(CorruptEmbeddingError):
        embedding_codec.dimension(b"")
    damaged = embedding_codec.encode(vectors(1)[0])
    damaged = damaged[:-1] + bytes([damaged[-1] ^ 1])
    with pytest.raises(CorruptEmbeddingError, match="fails its CRC-32 check"):
        embedding_codec.dimension(damaged)  # int8 with its tag: damaged, not "no dimension"
    with pytest.raises(ModelOutputError, match="L2 norm is 0 "):
        embedding_codec.encode(np.zeros(512, np.float32))
    with pytest.raises(ModelOutputError, match="L2 norm is inf "):
        embedding_codec.encode(np.full(512, np.inf, np.float32))
    with pytest.raises(ModelOutputError, match="L2 norm is nan "):
        embedding_codec.encode(np.full(512, np.nan, np.float32))


def test_float32_edges_of_the_norm() -> None:
    # Finite float32 components whose norm does not fit the stored float32 norm: refused, not an OverflowError.
    with pytest.raises(ModelOutputError, match="within float32's range"):
        embedding_codec.encode(np.full(512, 3e38, np.float32))
    # The largest norm that fits, and subnormal components: stored and read back at their scale.
    for layout in ("int8", "float16"):
        for vector in (np.full(512, 1.5e37, np.float32), np.full(512, 1e-45, np.float32)):
            _, features = embedding_codec.round_trip(vector, layout)  # type: ignore[arg-type]
            assert np.isfinite(features).all()
            np.testing.assert_allclose(features[0], vector, rtol=1e-3)

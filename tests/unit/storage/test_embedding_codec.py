"""The stored embedding's format: float16 unit vector + float32 norm + CRC-32, and what it costs."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from clip_classifier.exceptions import CorruptEmbeddingError, ModelOutputError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_local.paths import EXAMPLE_WEIGHTS

HEAD = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def vectors(count: int = 200, dim: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # CLIP-like: roughly Gaussian, norms around 10, a few large components.
    x = rng.normal(size=(count, dim)) * 0.45
    x[:, rng.integers(0, dim, 5)] *= 8
    return x.astype(np.float32)


def test_layout_and_round_trip() -> None:
    x = vectors(1)[0]
    data = embedding_codec.encode(x)
    assert len(data) == embedding_codec.encoded_size(512) == 1032
    assert embedding_codec.dimension(data) == 512
    unit, norm = embedding_codec.decode(data, 512)
    assert norm == pytest.approx(float(np.linalg.norm(x.astype(np.float64))), rel=1e-7)
    assert unit.dtype == np.float32 and unit.shape == (512,)
    expected = (x / np.linalg.norm(x)).astype(np.float16).astype(np.float32)
    assert np.array_equal(unit, expected)
    features = embedding_codec.head_input(data, 512)
    assert features.shape == (1, 512) and np.array_equal(features[0], unit * np.float32(norm))


def test_the_float16_cost_is_measured_small() -> None:
    """Cosine to float32 and the largest probability change of the example head, over 200 vectors."""
    x = vectors()
    decoded = np.concatenate([embedding_codec.head_input(embedding_codec.encode(v), 512) for v in x])
    cosine = (x * decoded).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(decoded, axis=1)
    assert cosine.min() >= 0.99999  # measured 0.9999998
    _, exact = HEAD.forward(x)
    _, rounded = HEAD.forward(decoded)
    assert np.abs(exact - rounded).max() <= 1e-5  # measured 1.4e-7 on this (random) head


def test_round_trip_gives_what_a_rescore_decodes() -> None:
    x = vectors(3)
    for v in x:
        stored, features = embedding_codec.round_trip(v[None, :])
        assert np.array_equal(features, embedding_codec.head_input(stored, 512))
        # The same bytes score the same, bit for bit: a rescore with the same head reproduces the result.
        assert HEAD.predict(features)[0] == HEAD.predict(embedding_codec.head_input(stored, 512))[0]


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[:-1], "1031 bytes; 512 dimensions take 1032"),
        (lambda d: d + b"\0\0", "1034 bytes; 512 dimensions take 1032"),
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
def test_damage_is_refused_with_the_reason(damage: object, message: str) -> None:
    data = embedding_codec.encode(vectors(1)[0])
    broken = damage(data)  # type: ignore[operator]
    with pytest.raises(CorruptEmbeddingError, match=message):
        embedding_codec.decode(broken, 512)


def test_no_dimension_gives_an_odd_length_and_zero_vectors_are_not_stored() -> None:
    with pytest.raises(CorruptEmbeddingError, match="which no dimension gives"):
        embedding_codec.dimension(b"\0" * 9)
    with pytest.raises(CorruptEmbeddingError):
        embedding_codec.dimension(b"")
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
    for vector in (np.full(512, 1.5e37, np.float32), np.full(512, 1e-45, np.float32)):
        _, features = embedding_codec.round_trip(vector)
        assert np.isfinite(features).all()
        np.testing.assert_allclose(features[0], vector, rtol=1e-3)

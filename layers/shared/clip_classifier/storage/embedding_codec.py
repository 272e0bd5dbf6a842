"""The stored embedding: an image's CLIP features kept beside its result, so a new head can re-score it
without the image (the rescore state machine).

Layout of the DynamoDB binary attribute ``embedding`` (little-endian), 1,032 bytes for 512 dimensions:

* ``dim`` × float16 — the L2-normalised embedding, rounded to half precision;
* float32 — the embedding's L2 norm (heads with ``input_normalization: none`` need the scale);
* uint32 — CRC-32 of everything before it, so a damaged attribute is refused rather than scored.

:func:`head_input` is the one way from that attribute to the head's input, and the upload path applies the
head to exactly what it returns for the embedding it stores (:func:`round_trip`). So re-scoring a stored
embedding with the same head reproduces the stored probabilities bit for bit, whether or not the
embedding is kept.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from clip_classifier.arrays import F32
from clip_classifier.exceptions import CorruptEmbeddingError, ModelOutputError

_TRAILER = struct.Struct("<fI")
#: float16 keeps ~3 significant digits: a unit vector's cosine to its rounding is > 0.99999.
DTYPE = np.dtype("<f2")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def encoded_size(dim: int) -> int:
    return dim * DTYPE.itemsize + _TRAILER.size


def encode(embedding: F32) -> bytes:
    """One ``[dim]`` (or ``[1, dim]``) float32 embedding → the stored bytes, or :class:`ModelOutputError`."""
    vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vector))
    # The norm is stored as float32: finite float32 components can still have a norm beyond its range.
    if not np.isfinite(norm) or norm == 0.0 or norm > _FLOAT32_MAX:
        raise ModelOutputError(
            f"the model's embedding cannot be scored: its L2 norm is {norm:g} "
            "(needs a finite, non-zero value within float32's range)"
        )
    unit = (vector / norm).astype(DTYPE)
    body = unit.tobytes() + struct.pack("<f", norm)
    return body + struct.pack("<I", zlib.crc32(body))


def dimension(data: bytes) -> int:
    """How many dimensions stored bytes hold (their length says), or :class:`CorruptEmbeddingError`."""
    body = len(data) - _TRAILER.size
    if body <= 0 or body % DTYPE.itemsize:
        raise CorruptEmbeddingError(f"stored embedding is {len(data)} bytes, which no dimension gives")
    return body // DTYPE.itemsize


def decode(data: bytes, dim: int) -> tuple[F32, float]:
    """The stored bytes → (unit vector as float32, norm), or :class:`CorruptEmbeddingError` saying why."""
    if len(data) != encoded_size(dim):
        raise CorruptEmbeddingError(
            f"stored embedding is {len(data)} bytes; {dim} dimensions take {encoded_size(dim)}"
        )
    norm, crc = _TRAILER.unpack_from(data, dim * DTYPE.itemsize)
    if zlib.crc32(data[:-4]) != crc:
        raise CorruptEmbeddingError("stored embedding fails its CRC-32 check")
    unit = np.frombuffer(data, dtype=DTYPE, count=dim).astype(np.float32)
    length = float(np.linalg.norm(unit.astype(np.float64)))
    # A float16-rounded unit vector is within ~1e-3 of length 1; anything else was not written by encode().
    if not (np.isfinite(unit).all() and np.isfinite(norm) and norm > 0 and abs(length - 1.0) < 1e-2):
        raise CorruptEmbeddingError("stored embedding is not a finite unit vector with a positive norm")
    return unit, float(norm)


def head_input(data: bytes, dim: int) -> F32:
    """The ``[1, dim]`` float32 batch a head scores for a stored embedding."""
    unit, norm = decode(data, dim)
    return (unit * np.float32(norm))[None, :]


def round_trip(embedding: F32) -> tuple[bytes, F32]:
    """What the upload path stores for an embedding, and the head input it scores (the same as a rescore's)."""
    data = encode(embedding)
    return data, head_input(data, int(np.asarray(embedding).size))

"""The stored embedding: an image's CLIP features kept beside its result, so a new head can re-score it
without the image (the rescore state machine).

Two layouts of the DynamoDB binary attribute ``embedding`` (little-endian); :func:`decode` reads both:

* **int8** (written since the cost round; 521 bytes for 512 dimensions) — ``0x02`` tag, ``dim`` × int8:
  the L2-normalised embedding scaled so its largest component is ±127 and rounded, then float32 — the
  embedding's L2 norm, then uint32 — CRC-32 of everything before it. Decoding rescales the int8 vector to
  unit length and multiplies by the norm.
* **float16** (items written before; 1,032 bytes for 512 dimensions) — ``dim`` × float16 unit vector,
  float32 norm, CRC-32. No tag: its length, ``2·dim + 8``, tells it apart.

Why int8: the item then fits 2 DynamoDB write units instead of 3 (a third less on every write of every
path). Its cost, measured by ``tests/unit/storage/test_embedding_codec.py`` and ``bench/item_size.py``:
cosine to float32 ≥ 0.9993 on vectors with CLIP-like outlier components (float16: 0.9999998), a largest
probability change of 2e-5 on the example head. A head's ranking of classes is unchanged in practice.

:func:`head_input` is the one way from that attribute to the head's input, and the upload path applies the
head to exactly what it returns for the embedding it stores (:func:`round_trip`). So re-scoring a stored
embedding with the same head reproduces the stored probabilities bit for bit, whether or not the
embedding is kept.
"""

from __future__ import annotations

import struct
import zlib
from typing import Literal

import numpy as np

from clip_classifier.arrays import F32
from clip_classifier.exceptions import CorruptEmbeddingError, ModelOutputError

Layout = Literal["int8", "float16"]
#: What the upload path, the backfill and the rescore write.
CURRENT: Layout = "int8"

_TRAILER = struct.Struct("<fI")
_INT8_TAG = 0x02
#: The int8 layout's CRC starts from this value instead of 0, so float16 bytes that happen to begin with the
#: tag (1 in 256) can never pass as int8: the two layouts' checks differ, not only their lengths.
_INT8_CRC_START = 0x494E5438
#: float16 keeps ~3 significant digits: a unit vector's cosine to its rounding is > 0.99999.
DTYPE = np.dtype("<f2")
_INT8 = np.dtype("i1")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def encoded_size(dim: int, layout: Layout = CURRENT) -> int:
    if layout == "int8":
        return 1 + dim * _INT8.itemsize + _TRAILER.size
    return dim * DTYPE.itemsize + _TRAILER.size


def encode(embedding: F32, layout: Layout = CURRENT) -> bytes:
    """One ``[dim]`` (or ``[1, dim]``) float32 embedding → the stored bytes, or :class:`ModelOutputError`."""
    vector = np.asarray(embedding, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(vector))
    # The norm is stored as float32: finite float32 components can still have a norm beyond its range.
    if not np.isfinite(norm) or norm == 0.0 or norm > _FLOAT32_MAX:
        raise ModelOutputError(
            f"the model's embedding cannot be scored: its L2 norm is {norm:g} "
            "(needs a finite, non-zero value within float32's range)"
        )
    unit = vector / norm
    if layout == "int8":
        scaled = np.rint(unit * (127.0 / float(np.abs(unit).max())))
        body = bytes([_INT8_TAG]) + np.clip(scaled, -127, 127).astype(_INT8).tobytes()
    else:
        body = unit.astype(DTYPE).tobytes()
    body += struct.pack("<f", norm)
    return body + struct.pack("<I", _crc(body, layout))


def _crc(body: bytes, layout: Layout) -> int:
    return zlib.crc32(body, _INT8_CRC_START if layout == "int8" else 0)


def _layout(data: bytes) -> Layout:
    """int8 bytes start with their tag and pass their own CRC; anything else is read as float16."""
    tagged = len(data) > 1 + _TRAILER.size and data[0] == _INT8_TAG
    if tagged and _crc(data[:-4], "int8") == struct.unpack_from("<I", data, len(data) - 4)[0]:
        return "int8"
    return "float16"


def dimension(data: bytes) -> int:
    """How many dimensions stored bytes hold (their length says), or :class:`CorruptEmbeddingError`."""
    if _layout(data) == "int8":
        return len(data) - 1 - _TRAILER.size
    body = len(data) - _TRAILER.size
    if body > 0 and body % DTYPE.itemsize == 0:
        return body // DTYPE.itemsize  # float16, or damaged: decode() checks its CRC
    if data[:1] == bytes([_INT8_TAG]) and len(data) > 1 + _TRAILER.size:
        raise CorruptEmbeddingError("stored embedding fails its CRC-32 check")  # int8, damaged
    raise CorruptEmbeddingError(f"stored embedding is {len(data)} bytes, which no dimension gives")


def decode(data: bytes, dim: int) -> tuple[F32, float]:
    """The stored bytes → (unit vector as float32, norm), or :class:`CorruptEmbeddingError` saying why."""
    # For any dimension above 1 the two layouts' lengths differ, so the length says which one to check.
    layout: Layout = "int8" if len(data) == encoded_size(dim, "int8") and dim > 1 else "float16"
    if len(data) != encoded_size(dim, layout):
        raise CorruptEmbeddingError(
            f"stored embedding is {len(data)} bytes; {dim} dimensions take {encoded_size(dim, 'int8')} "
            f"(or {encoded_size(dim, 'float16')} as float16)"
        )
    if _crc(data[:-4], layout) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        raise CorruptEmbeddingError("stored embedding fails its CRC-32 check")
    if layout == "int8" and data[0] != _INT8_TAG:
        raise CorruptEmbeddingError("stored embedding has an unknown layout tag")
    if layout == "int8":
        (norm,) = struct.unpack_from("<f", data, 1 + dim)
        steps = np.frombuffer(data, dtype=_INT8, count=dim, offset=1).astype(np.float64)
        length = float(np.linalg.norm(steps))
        # encode() puts ±127 in the largest component; an all-zero vector was not written by it.
        if not (length > 0 and np.isfinite(norm) and norm > 0):
            raise CorruptEmbeddingError("stored embedding is not a non-zero vector with a positive norm")
        return (steps / length).astype(np.float32), float(norm)
    (norm,) = struct.unpack_from("<f", data, dim * DTYPE.itemsize)
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


def round_trip(embedding: F32, layout: Layout = CURRENT) -> tuple[bytes, F32]:
    """What the upload path stores for an embedding, and the head input it scores (the same as a rescore's)."""
    data = encode(embedding, layout)
    return data, head_input(data, int(np.asarray(embedding).size))

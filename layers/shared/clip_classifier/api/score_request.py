"""The one validation step of a score request, after the schema (:class:`~.api_models.ScoreRequest`).

The schema checks JSON shape and types; this checks what depends on the head and the configuration —
batch size, vector length, float32 range, a norm to divide by, unique ids — and turns the request into the
float32 matrix the head runs on. For a head with L2 input normalisation, each vector is normalised here in
float64 (see :func:`_unit`), so any finite scale gives the unit vector's answer. Every error names the field's path as the client wrote it: ``features``,
``features[7]`` for a single vector; ``items``, ``items[3].features``, ``items[3].features[7]``,
``items[3].pictureId`` for a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clip_classifier.api.models import ScoreRequest
from clip_classifier.arrays import F32
from clip_classifier.exceptions import InvalidFeaturesError
from clip_classifier.head.forward import Head

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True)
class FeatureBatch:
    """A validated request: one row of ``features`` per entry, in request order."""

    picture_ids: list[str | None]
    features: F32
    is_batch: bool


def _unit(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """``values / ||values||`` for any finite float64 vector, or ``None`` for the zero vector.

    Dividing by the largest magnitude first keeps the square sum in range: norms like 1e300 or 1e-320
    (denormals) give the same unit vector as 1, where a plain float32 norm would overflow to infinity
    (then NaN) or underflow to zero. A head with L2 input normalisation only sees the direction, so the
    answer is scale-invariant across the whole JSON range.
    """
    peak = float(np.abs(values).max())
    if not peak > 0.0:
        return None
    scaled = values / peak
    return scaled / math.sqrt(float(np.dot(scaled, scaled)))


def validate_score_request(request: ScoreRequest, head: Head, *, max_items: int) -> FeatureBatch:
    """The request as a ``[N, input_dim]`` float32 batch, or :class:`InvalidFeaturesError` naming the field."""
    if request.items is not None:
        entries = [(f"items[{i}].", e.picture_id, e.features) for i, e in enumerate(request.items)]
        if len(entries) > max_items:
            raise InvalidFeaturesError(
                f"items must have at most {max_items} entries, got {len(entries)}", field="items"
            )
    else:
        assert request.features is not None  # the schema's one-of guarantees it
        entries = [("", request.picture_id, request.features)]

    rows = np.empty((len(entries), head.input_dim), dtype=np.float32)
    seen: dict[str, int] = {}
    for row, (prefix, picture_id, features) in enumerate(entries):
        path = f"{prefix}features"
        if len(features) != head.input_dim:
            raise InvalidFeaturesError(
                f"{path} must have {head.input_dim} numbers, got {len(features)}", field=path
            )
        values = np.asarray(features, dtype=np.float64)
        if head.input_normalization == "l2":
            unit = _unit(values)
            if unit is None:
                raise InvalidFeaturesError(f"{path} must not be all zeros (cannot L2-normalize)", field=path)
            rows[row] = unit
        else:
            too_big = np.abs(values) > FLOAT32_MAX
            if too_big.any():
                where = f"{path}[{int(np.argmax(too_big))}]"
                raise InvalidFeaturesError(f"{where} is outside the float32 range (±3.4e38)", field=where)
            rows[row] = values
        if picture_id is not None:
            if picture_id in seen:
                where = f"{prefix}pictureId"
                raise InvalidFeaturesError(
                    f"{where} '{picture_id}' appears more than once in the batch", field=where
                )
            seen[picture_id] = row
    return FeatureBatch([e[1] for e in entries], rows, request.items is not None)

"""The versioned JSON format of a classification head's weights.

A document describes an ordered stack of layers (``linear``, ``relu``, ``sigmoid``, ``softmax``) so both the
MLP head (512→256→128→12, sigmoid, normalized) and a plain logistic-regression head are expressible::

    {
      "format": "clip-head-weights", "format_version": 1,
      "head_type": "mlp",
      "classes": ["portrait", ...],
      "input_dim": 512,
      "input_normalization": "l2",
      "layers": [{"type": "linear", "weight": [[...]], "bias": [...]}, {"type": "relu"}, ...],
      "output": "sigmoid_normalized",
      "provenance": {"source_checkpoint_sha256": "...", "created_at": "...", "training": {...}},
      "content_sha256": "..."
    }

``content_sha256`` is computed by :func:`content_sha256` over a canonical header (classes, dimensions,
layer types and shapes, rules) followed by every linear layer's float32 little-endian weight and bias
bytes, so it changes whenever anything that affects a prediction changes and never when only the JSON
formatting or provenance does. It is the head's version.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, model_validator

from clip_classifier.exceptions import WeightsFormatError, WeightsIntegrityError

FORMAT_NAME = "clip-head-weights"
FORMAT_VERSION = 1

Number = StrictFloat | StrictInt
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinearLayer(_Strict):
    type: Literal["linear"]
    weight: list[list[Number]] = Field(
        description="[out_features][in_features], as torch.nn.Linear stores it"
    )
    bias: list[Number]


class ActivationLayer(_Strict):
    type: Literal["relu", "sigmoid", "softmax"]


Layer = Annotated[LinearLayer | ActivationLayer, Field(discriminator="type")]


class Provenance(_Strict):
    source_checkpoint_sha256: Sha256 | None = None
    created_at: datetime
    exported_by: str = ""
    training: dict[str, Any] = Field(default_factory=dict, description="Free-form training information.")


class AmbiguityGuard(_Strict):
    """A result is ``ambiguous`` when its top probability or its top-1 − top-2 margin is below these (fitted
    on held-out data for a target precision by weights/train_head.py)."""

    min_top_probability: float = Field(ge=0, le=1)
    min_margin: float = Field(ge=0, le=1)
    #: How the thresholds were chosen (target precision, coverage): informative only.
    fitted: dict[str, Any] = Field(default_factory=dict)


class WeightsDocument(_Strict):
    """A head weights file, validated for internal consistency."""

    format: Literal["clip-head-weights"]
    format_version: Literal[1]
    #: How the head was made: a trained MLP or linear head, or CLIP text prototypes (weights/zero_shot_head.py).
    head_type: Literal["mlp", "logreg", "prototype", "zero_shot"]
    classes: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(min_length=2)
    input_dim: int = Field(ge=1, le=65536)
    input_normalization: Literal["l2", "none"]
    layers: list[Layer] = Field(min_length=2)
    output: Literal["sigmoid_normalized", "softmax"] = "sigmoid_normalized"
    #: Optional: results then carry ``ambiguous``. Part of the content hash (it changes results).
    ambiguity: AmbiguityGuard | None = None
    provenance: Provenance
    content_sha256: Sha256

    @model_validator(mode="after")
    def _check_shapes(self) -> WeightsDocument:
        if len(set(self.classes)) != len(self.classes):
            dupes = sorted({c for c in self.classes if self.classes.count(c) > 1})
            raise ValueError(f"classes must be unique; repeated: {', '.join(dupes)}")
        width = self.input_dim
        linear_no = 0
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LinearLayer):
                continue
            linear_no += 1
            where = f"layers[{index}] (linear {linear_no})"
            rows = len(layer.weight)
            cols = {len(r) for r in layer.weight}
            if rows == 0 or len(cols) != 1:
                raise ValueError(f"{where}: weight must be a non-empty rectangular [out][in] matrix")
            (in_features,) = cols
            if in_features != width:
                source = "input_dim is" if linear_no == 1 else "the previous layer outputs"
                raise ValueError(f"{where}: weight is {rows}x{in_features} but {source} {width}")
            if len(layer.bias) != rows:
                raise ValueError(f"{where}: bias has {len(layer.bias)} values but weight has {rows} rows")
            width = rows
        if linear_no == 0:
            raise ValueError("layers must contain at least one linear layer")
        if width != len(self.classes):
            raise ValueError(f"classes has {len(self.classes)} labels but the last layer outputs {width}")
        last = self.layers[-1].type
        wanted = "sigmoid" if self.output == "sigmoid_normalized" else "softmax"
        if last != wanted:
            raise ValueError(f"output '{self.output}' needs a final '{wanted}' layer, found '{last}'")
        for index, layer in enumerate(self.layers[:-1]):
            if layer.type in ("sigmoid", "softmax"):
                raise ValueError(f"layers[{index}]: '{layer.type}' is only allowed as the final layer")
        return self

    def arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each linear layer's (weight [out, in], bias [out]) as float32 arrays."""
        return [
            (np.asarray(layer.weight, dtype=np.float32), np.asarray(layer.bias, dtype=np.float32))
            for layer in self.layers
            if isinstance(layer, LinearLayer)
        ]


def content_sha256(
    *,
    classes: list[str],
    input_dim: int,
    input_normalization: str,
    layer_types: list[str],
    linear: list[tuple[np.ndarray, np.ndarray]],
    output: str,
    ambiguity: tuple[float, float] | None = None,
) -> str:
    """The head version: sha256 of the canonical header and the float32 parameters."""
    header: dict[str, Any] = {
        "classes": classes,
        "input_dim": input_dim,
        "input_normalization": input_normalization,
        "layers": layer_types,
        "shapes": [list(w.shape) for w, _ in linear],
        "output": output,
    }
    if ambiguity is not None:  # absent for heads without a guard: their versions stay what they were
        header["ambiguity"] = [float(ambiguity[0]), float(ambiguity[1])]
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"\0")
    for weight, bias in linear:
        digest.update(np.ascontiguousarray(weight, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(bias, dtype="<f4").tobytes())
    return digest.hexdigest()


def document_sha256(doc: WeightsDocument) -> str:
    return content_sha256(
        classes=doc.classes,
        input_dim=doc.input_dim,
        input_normalization=doc.input_normalization,
        layer_types=[layer.type for layer in doc.layers],
        linear=doc.arrays(),
        output=doc.output,
        ambiguity=(
            None if doc.ambiguity is None else (doc.ambiguity.min_top_probability, doc.ambiguity.min_margin)
        ),
    )


def parse_weights(raw: bytes | str, *, location: str = "<memory>") -> WeightsDocument:
    """Parse and fully verify a weights document; errors name the location and the exact problem."""
    try:
        doc = WeightsDocument.model_validate_json(raw)
    except ValidationError as exc:
        raise WeightsFormatError(f"invalid weights file {location}: {_describe(exc)}") from exc
    actual = document_sha256(doc)
    if actual != doc.content_sha256:
        raise WeightsIntegrityError(
            f"weights file {location} is corrupt: content sha256 is {actual} "
            f"but the file declares {doc.content_sha256}"
        )
    return doc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")

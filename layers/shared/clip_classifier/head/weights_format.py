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
import math
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from clip_classifier.exceptions import WeightsFormatError, WeightsIntegrityError, WeightsTooLargeError
from clip_classifier.head.labels import classes_problem

FORMAT_NAME = "clip-head-weights"
FORMAT_VERSION = 1
#: The largest weights file any function downloads or parses. Parsing one at the limit takes at most about
#: 15 times its size in memory (worst case: short floats, each a Python object while the JSON is read),
#: ~245 MB, within the API function's 512 MB (``python -m bench.head_limits`` measures it in a fresh
#: process). A 512→256→128→1000 MLP is 3.5 MB; a 768→800 linear head about 8 MB.
MAX_WEIGHTS_BYTES = 16 * 1024 * 1024
#: Integer literals longer than this are refused (Python would build them digit by digit; no weight needs it).
MAX_INT_DIGITS = 20
FLOAT32_MAX = float(np.finfo(np.float32).max)
#: A head whose activations can grow past this for an allowed input is refused: its float64 forward pass
#: (the fallback when float32 overflows) must stay finite on every finite input.
MAX_ACTIVATION = 1e300

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _numbers(value: Any, dims: int) -> np.ndarray:
    """A JSON array of numbers (``dims`` deep) as float32, or ``ValueError`` saying which element is wrong:
    numbers only (no strings, booleans or null), finite, within float32's range."""
    if isinstance(value, np.ndarray):  # built in Python (tools, tests): same checks on the values
        array = np.asarray(value)
        if array.ndim != dims or array.dtype.kind not in "fiu":
            raise ValueError(f"must be a {dims}-D array of numbers")
    else:
        rows = value if dims == 2 else [value]
        if not isinstance(rows, list) or not rows:
            raise ValueError("must be a non-empty array" + (" of arrays" if dims == 2 else ""))
        for i, row in enumerate(rows):
            where = f"[{i}]" if dims == 2 else ""
            if not isinstance(row, list) or not row:
                raise ValueError(f"{where} must be a non-empty array of numbers".lstrip())
            if not set(map(type, row)) <= {float, int}:
                j = next(j for j, x in enumerate(row) if type(x) not in (float, int))
                raise ValueError(f"{where}[{j}] is not a number")
        if dims == 2 and len({len(row) for row in rows}) != 1:
            raise ValueError("must be a rectangular [out][in] matrix")
        array = value
    # Straight to float32 (no float64 copy: the parse's peak memory is bounded by MAX_WEIGHTS_BYTES). The
    # reader refused non-finite numbers, so an infinity here is a value past float32's range.
    with np.errstate(over="ignore", invalid="ignore"):
        single = np.array(array, dtype=np.float32)
    bad = ~np.isfinite(single)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        beyond = np.isinf(single[index]) and np.isfinite(np.float64(np.asarray(array)[index]))
        problem = "is beyond float32's range (±3.4e38)" if beyond else "is not a finite number"
        raise ValueError(f"{''.join(f'[{i}]' for i in index)} {problem}")
    return single


def _listed(array: np.ndarray) -> list[Any]:
    """float32 values as JSON numbers (their exact float64 values: they read back to the same float32)."""
    values: list[Any] = array.tolist()
    return values


Matrix = Annotated[np.ndarray, BeforeValidator(lambda v: _numbers(v, 2)), PlainSerializer(_listed)]
Vector = Annotated[np.ndarray, BeforeValidator(lambda v: _numbers(v, 1)), PlainSerializer(_listed)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinearLayer(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    type: Literal["linear"]
    #: [out_features][in_features], as torch.nn.Linear stores it; float32, checked finite.
    weight: Matrix
    bias: Vector


class ActivationLayer(_Strict):
    type: Literal["relu", "sigmoid", "softmax"]


Layer = Annotated[LinearLayer | ActivationLayer, Field(discriminator="type")]


class Provenance(_Strict):
    source_checkpoint_sha256: Sha256 | None = None
    #: The image embedders (model sha256) whose features the head was made for: a function serving any other
    #: model refuses it. Empty: made for any embedder of ``input_dim`` (the random example head).
    embedder_sha256: list[Sha256] = Field(default_factory=list)
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
    #: Labels as people read them, in output order (rules: :mod:`.labels`).
    classes: list[str]
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
        problem = classes_problem(self.classes)
        if problem:
            raise ValueError(problem)
        width = self.input_dim
        linear_no = 0
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, LinearLayer):
                continue
            linear_no += 1
            where = f"layers[{index}] (linear {linear_no})"
            rows, in_features = layer.weight.shape
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
        bound = activation_bound(self)
        if not bound <= MAX_ACTIVATION:
            raise ValueError(
                f"its activations can reach {bound:.3g} for an allowed input, beyond what a finite result can "
                "be computed from: the weights are not a usable head"
            )
        return self

    def arrays(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each linear layer's (weight [out, in], bias [out]) as float32 arrays."""
        return [(layer.weight, layer.bias) for layer in self.layers if isinstance(layer, LinearLayer)]


def activation_bound(doc: WeightsDocument) -> float:
    """The largest magnitude any layer's output can take for an allowed input (a unit vector with L2 input
    normalisation, any float32 vector without), by the rows' absolute sums: a float64 forward pass below
    :data:`MAX_ACTIVATION` cannot overflow, however the float32 one fares."""
    bound = 1.0 if doc.input_normalization == "l2" else FLOAT32_MAX
    with np.errstate(over="ignore"):  # an infinite bound is the answer, not an accident
        for weight, bias in doc.arrays():
            rows = np.abs(weight.astype(np.float64)).sum(axis=1)
            bound = float(np.max(rows * bound + np.abs(bias.astype(np.float64))))
            if not math.isfinite(bound):
                return math.inf
    return bound


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


def read_json(raw: bytes | str, *, location: str = "<memory>") -> Any:
    """The document's JSON, read strictly and within bounds: at most :data:`MAX_WEIGHTS_BYTES`; JSON's
    non-standard tokens (``NaN``, ``Infinity``) refused by the parser itself, as are numbers beyond float64
    and integers of more than :data:`MAX_INT_DIGITS` digits, each with a weights error that says which."""
    if len(raw) > MAX_WEIGHTS_BYTES:
        raise WeightsTooLargeError(
            f"weights file {location} is {len(raw):,} bytes; the limit is {MAX_WEIGHTS_BYTES:,}"
        )

    def refuse(message: str) -> WeightsFormatError:
        return WeightsFormatError(f"invalid weights file {location}: {message}")

    def constant(token: str) -> float:
        raise refuse(f"{token} is not a JSON number (weights must be finite numbers)")

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
            raise refuse(f"the number {shown} is beyond the 64-bit float range")
        return value

    def integer(text: str) -> int:
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise refuse(f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are read")
        return int(text)

    try:
        return json.loads(raw, parse_constant=constant, parse_float=number, parse_int=integer)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise refuse(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise refuse("nested too deeply") from exc


def parse_weights(raw: bytes | str, *, location: str = "<memory>") -> WeightsDocument:
    """Parse and fully verify a weights document: the one check every head passes where it enters (both
    functions, the trainer, the zero-shot builder). Errors name the location and the exact problem."""
    data = read_json(raw, location=location)
    try:
        doc = WeightsDocument.model_validate(data)
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
        # ('layers', 0, 'linear', 'weight') → layers[0].weight: the discriminator tag is not a field
        loc = ""
        for part in err["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            elif part not in ("linear", "relu", "sigmoid", "softmax"):
                loc += f".{part}" if loc else str(part)
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}{msg}" if msg.startswith("[") else f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")

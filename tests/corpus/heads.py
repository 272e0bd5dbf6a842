"""Head files an attacker (or a broken tool) could put at ``WeightsUri``, generated in code, each with the
outcome every function must give: refused at load with a named weights error, or served with a finite
distribution on every input. ``python -m tests.corpus.heads`` lists them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.helpers import encode, rehash, small_doc


@dataclass(frozen=True)
class HeadCase:
    name: str
    make: Callable[[], bytes]
    #: "served" (a finite distribution on every input), or the weights error code it is refused with.
    outcome: str
    #: Part of the refusal's message (what the limit is about).
    message: str = ""


def _text(doc: dict[str, Any], old: str, new: str) -> bytes:
    """The document's JSON with one token replaced (what a hand-edited or hostile file holds)."""
    raw = json.dumps(doc)
    assert old in raw
    return raw.replace(old, new, 1).encode()


def _mlp(scale: float = 1.0, final_bias: float = 0.0, dim: int = 4, **changes: Any) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    doc = small_doc(input_dim=dim, **changes)
    doc["layers"][0]["weight"] = (rng.normal(size=(3, dim)) * scale).tolist()
    doc["layers"][2]["weight"] = (rng.normal(size=(2, 3)) * scale).tolist()
    doc["layers"][2]["bias"] = [final_bias, final_bias]
    return rehash(doc)


def _classes(labels: list[str]) -> bytes:
    k = len(labels)
    doc = small_doc(classes=labels)
    doc["layers"][2] = {"type": "linear", "weight": [[0.1, 0.2, 0.3]] * k, "bias": [0.0] * k}
    return encode(rehash(doc))


def _deep(weight: float, layers: int) -> bytes:
    doc = small_doc(input_normalization="l2")
    stack: list[dict[str, Any]] = []
    for i in range(layers):
        out = 2 if i == layers - 1 else 4
        stack += [{"type": "linear", "weight": [[weight] * 4] * out, "bias": [0.0] * out}, {"type": "relu"}]
    doc["layers"] = [*stack[:-1], {"type": "sigmoid"}]
    return encode(rehash(doc))


def head_cases(dim: int = 4) -> list[HeadCase]:
    """The cases; ``dim`` is the input dimension of the heads that are served (512 for the functions)."""
    doc = small_doc()
    first = str(doc["layers"][0]["weight"][0][0])
    return [
        HeadCase("a bare NaN token", lambda: _text(doc, first, "NaN"), "weights_invalid", "NaN is not a JSON number"),
        HeadCase("a bare Infinity token", lambda: _text(doc, first, "Infinity"), "weights_invalid", "Infinity is not a JSON number"),
        HeadCase("-Infinity", lambda: _text(doc, first, "-Infinity"), "weights_invalid", "-Infinity is not a JSON number"),
        HeadCase("a value past float32 (1e39)", lambda: _text(doc, first, "1e39"), "weights_invalid", "beyond float32's range"),
        HeadCase("a value past float64 (1e400)", lambda: _text(doc, first, "1e400"), "weights_invalid", "beyond the 64-bit float range"),
        HeadCase("an integer of 400 digits", lambda: _text(doc, first, "9" * 400), "weights_invalid", "an integer of 400 digits"),
        HeadCase("a boolean among the weights", lambda: _text(doc, first, "true"), "weights_invalid", "is not a number"),
        HeadCase("a file over the size limit", lambda: b" " * (16 * 1024 * 1024 + 1) + encode(doc), "weights_too_large", "the limit is 16,777,216"),
        HeadCase("nesting 100,000 deep", lambda: b"[" * 100_000 + b"]" * 100_000, "weights_invalid", "nested too deeply"),
        HeadCase("finite weights whose float32 forward pass overflows (1e30)", lambda: encode(_mlp(scale=1e30, dim=dim)), "served"),
        HeadCase("sigmoids that all underflow to 0 (biases -1e4)", lambda: encode(_mlp(final_bias=-1e4, dim=dim)), "served"),
        HeadCase("activations past float64's range (3e38 over 9 layers)", lambda: _deep(3e38, 9), "weights_invalid", "its activations can reach"),
        HeadCase("1,001 classes", lambda: _classes([f"c{i}" for i in range(1001)]), "weights_invalid", "at most 1000 are allowed"),
        HeadCase("900 classes a batch response cannot hold", lambda: _classes([f"class number {i}" for i in range(900)]), "weights_invalid", "over Lambda's 6,291,456-byte response limit"),
        HeadCase("a label with a control character", lambda: _classes(["a", "b\x00"]), "weights_invalid", "U+0000, which is not allowed"),
        HeadCase("a label with a right-to-left override", lambda: _classes(["a", "b\u202ec"]), "weights_invalid", "U+202E"),
        HeadCase("a label not in NFC", lambda: _classes(["a", "cafe\u0301"]), "weights_invalid", "not in Unicode NFC form"),
        HeadCase("a blank label", lambda: _classes(["a", "   "]), "weights_invalid", "is blank"),
        HeadCase("labels equal but for case", lambda: _classes(["Pet", "pet"]), "weights_invalid", 'repeats classes[0] "Pet"'),
    ]  # fmt: skip


if __name__ == "__main__":
    for case in head_cases():
        print(f"{case.name:<62} {case.outcome:<18} {case.message}")

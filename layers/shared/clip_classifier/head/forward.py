"""The classification head: a NumPy float32 forward pass over a :class:`WeightsDocument`.

Pure math: it takes an already validated ``[N, input_dim]`` float32 batch (the API validates requests in
:mod:`.score_request`; the embedder's output has the model's shape) and raises ``ValueError`` only for a
batch of the wrong shape or a vector it cannot L2-normalise.

Weights are converted once (per container) into contiguous ``[in, out]`` matrices so a forward pass is a
few BLAS calls: ~10 µs for one vector, ~1 ms for 1,000 (``bench/bench_head.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clip_classifier.arrays import F32
from clip_classifier.exceptions import WeightsFormatError
from clip_classifier.head.weights_format import WeightsDocument


@dataclass(frozen=True, slots=True)
class Prediction:
    """One vector's result: raw final-activation scores and probabilities that sum to 1."""

    classes: tuple[str, ...]
    scores: tuple[float, ...]
    probabilities: tuple[float, ...]
    #: With a head that has an ambiguity guard: whether this result fell below it; else None.
    ambiguous: bool | None = None

    @property
    def top_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def top_label(self) -> str:
        return self.classes[self.top_index]

    @property
    def top_probability(self) -> float:
        return self.probabilities[self.top_index]

    def top(self, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` most probable (label, probability), most probable first (ties: class order)."""
        order = sorted(range(len(self.classes)), key=lambda i: (-self.probabilities[i], i))
        return [(self.classes[i], self.probabilities[i]) for i in order[:count]]


class Head:
    """An immutable, ready-to-run head. Build it once per container from a parsed document."""

    def __init__(self, doc: WeightsDocument) -> None:
        self.classes: tuple[str, ...] = tuple(doc.classes)
        self.input_dim = doc.input_dim
        self.input_normalization = doc.input_normalization
        self.output = doc.output
        self.version = doc.content_sha256
        self.head_type = doc.head_type
        self.ambiguity = doc.ambiguity
        # The fast paths run "linear (relu linear)* final" with W^T stored [in, out] contiguous, so that
        # x @ W^T + b matches torch.nn.Linear. Any other stack is refused here rather than run slowly.
        kinds = [layer.type for layer in doc.layers]
        expected = ["linear"] + ["relu", "linear"] * (kinds.count("linear") - 1) + [kinds[-1]]
        if kinds != expected:
            raise WeightsFormatError(
                f"unsupported layer order {kinds}: expected linear, (relu, linear)*, then sigmoid or softmax"
            )
        # (W^T, bias, -bias): relu(h + b) is computed as max(h, -b) + b, because NumPy's maximum against a
        # broadcast array is ~2x faster than against the scalar 0 (bench/bench_head.py).
        self._linears: list[tuple[F32, F32, F32]] = [
            (np.ascontiguousarray(w.T), b, np.negative(b)) for w, b in doc.arrays()
        ]
        self._final = kinds[-1]

    # --- forward -------------------------------------------------------------------------------------

    def forward(self, batch: F32) -> tuple[F32, F32]:
        """Scores and probabilities for a validated ``[N, input_dim]`` float32 batch.

        Hot path (see bench/bench_head.py), so it avoids temporaries: the L2 norm is applied after the first
        linear layer (W·(x/n) = (W·x)/n on the narrower output), activations work in place, and the sigmoid
        is computed as 0.5·tanh(x/2)+0.5, which cannot overflow and needs no ``np.errstate`` context.
        """
        if batch.ndim != 2 or batch.shape[1] != self.input_dim:
            raise ValueError(f"expected a [N, {self.input_dim}] batch, got shape {batch.shape}")
        if batch.shape[0] == 1:
            scores = self._forward_vector(batch[0])[None, :]
        else:
            scores = self._forward_batch(batch)
        if self.output == "sigmoid_normalized":
            probabilities = scores / scores.sum(axis=1, keepdims=True)
        else:
            probabilities = scores
        return scores, probabilities

    def _forward_vector(self, x: F32) -> F32:
        scale = 1.0
        if self.input_normalization == "l2":
            squared = float(np.dot(x, x))
            if squared <= 0.0:
                raise ValueError("cannot L2-normalise an all-zero vector")
            scale = 1.0 / math.sqrt(squared)
        h = np.dot(x, self._linears[0][0])
        if scale != 1.0:
            h *= scale
        return self._finish(h)

    def _forward_batch(self, x: F32) -> F32:
        scale = None
        if self.input_normalization == "l2":
            squared = np.einsum("ij,ij->i", x, x)
            if not (squared > 0).all():
                raise ValueError("cannot L2-normalise an all-zero vector")
            scale = (1.0 / np.sqrt(squared))[:, None]
        h = x @ self._linears[0][0]
        if scale is not None:
            h *= scale
        return self._finish(h)

    def _finish(self, h: F32) -> F32:
        """Everything after the first matrix product: bias, (ReLU, linear)*, final activation."""
        last = len(self._linears) - 1
        for i, (_, bias, neg_bias) in enumerate(self._linears):
            if i < last:
                np.maximum(h, neg_bias, out=h)  # every linear but the last feeds a ReLU (checked at init)
                h += bias
                h = h @ self._linears[i + 1][0]
            else:
                h += bias
        self._activate(self._final, h)
        return h

    @staticmethod
    def _activate(kind: str, x: F32) -> None:
        """Apply the final activation to ``x`` in place (last axis for softmax)."""
        if kind == "sigmoid":
            x *= 0.5
            np.tanh(x, out=x)
            x *= 0.5
            x += 0.5
        else:  # softmax
            x -= x.max(axis=-1, keepdims=True)
            np.exp(x, out=x)
            x /= x.sum(axis=-1, keepdims=True)

    def predict(self, batch: F32) -> list[Prediction]:
        """Run and package a validated ``[N, input_dim]`` float32 batch."""
        scores, probabilities = self.forward(batch)
        flags: list[bool | None] = [None] * len(probabilities)
        if self.ambiguity is not None and len(self.classes) >= 2:
            ordered = np.sort(probabilities, axis=1)
            top, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
            low = (top < self.ambiguity.min_top_probability) | (margin < self.ambiguity.min_margin)
            flags = [bool(flag) for flag in low]
        return [
            Prediction(self.classes, tuple(s.tolist()), tuple(p.tolist()), flag)
            for s, p, flag in zip(scores, probabilities, flags, strict=True)
        ]

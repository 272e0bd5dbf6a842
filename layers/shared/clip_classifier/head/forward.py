"""The classification head: a NumPy float32 forward pass over a :class:`WeightsDocument`.

Pure math: it takes an already validated ``[N, input_dim]`` float32 batch (the API validates requests in
:mod:`clip_classifier.api.score_request`; the embedder's output has the model's shape).

Weights are converted once (per container) into contiguous ``[in, out]`` matrices so a forward pass is a
few BLAS calls: ~20 µs for one vector, ~2 ms for 1,000 (``bench/bench_head.py``).

**Every finite input gives a finite distribution that sums to 1.** The float32 pass covers every row it
can; a row it cannot finish finitely — an activation past float32's range, an L2 norm that overflows or
underflows, sigmoids that all round to 0 (0/0 after normalisation) — is computed again in float64, with the
sigmoids normalised in log space. The weights format refuses heads whose activations could leave float64's
range (:func:`~clip_classifier.head.weights_format.activation_bound`), so that pass always ends finite.
What the head cannot score at all (a zero vector, the wrong shape) is a :class:`HeadInputError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from clip_classifier.arrays import F32
from clip_classifier.exceptions import HeadInputError, WeightsFormatError
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
        #: The embedders (model sha256) the head was made for; empty: any of ``input_dim``.
        self.embedders: tuple[str, ...] = tuple(doc.provenance.embedder_sha256)
        #: Where it came from (the file's provenance, as JSON data): :mod:`.origin` describes it.
        self.provenance: dict[str, Any] = doc.provenance.model_dump(mode="json", exclude_none=True)
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
        is computed as 0.5·tanh(x/2)+0.5. Rows it cannot finish finitely are redone by :meth:`_exact`.
        """
        if batch.ndim != 2 or batch.shape[1] != self.input_dim:
            raise HeadInputError(f"expected a [N, {self.input_dim}] batch, got shape {batch.shape}")
        # Overflow and 0/0 are caught below, row by row: no warnings from the fast path.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            if batch.shape[0] == 1:
                scores = self._forward_vector(batch[0])[None, :]
            else:
                scores = self._forward_batch(batch)
            if self.output == "sigmoid_normalized":
                probabilities = scores / scores.sum(axis=1, keepdims=True)
            else:
                probabilities = scores
        unfinished = ~np.isfinite(probabilities).all(axis=1)
        if unfinished.any():
            if probabilities is scores:
                scores = scores.copy()
            probabilities = probabilities.copy() if probabilities is not scores else scores
            for row in np.flatnonzero(unfinished):
                scores[row], probabilities[row] = self._exact(batch[row])
        return scores, probabilities

    def _forward_vector(self, x: F32) -> F32:
        scale = 1.0
        if self.input_normalization == "l2":
            squared = float(np.dot(x, x))
            # 0 (underflow, or a zero vector) or inf (overflow): NaN here, redone exactly by _exact.
            scale = 1.0 / math.sqrt(squared) if 0.0 < squared < math.inf else math.nan
        h = np.dot(x, self._linears[0][0])
        if scale != 1.0:
            h *= scale
        return self._finish(h)

    def _forward_batch(self, x: F32) -> F32:
        scale = None
        if self.input_normalization == "l2":
            squared = np.einsum("ij,ij->i", x, x)
            scale = np.where((squared > 0) & np.isfinite(squared), 1.0 / np.sqrt(squared), np.nan)[:, None]
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

    def _exact(self, x: F32) -> tuple[F32, F32]:
        """One row in float64, normalised in log space: finite for every finite input of a valid head."""
        h = x.astype(np.float64)
        if self.input_normalization == "l2":
            peak = float(np.abs(h).max()) if h.size else 0.0
            if not peak > 0.0 or not math.isfinite(peak):
                raise HeadInputError("cannot L2-normalise an all-zero or non-finite vector")
            h = h / peak  # scale first, so the squares can neither overflow nor underflow
            h /= math.sqrt(float(np.dot(h, h)))
        elif not np.isfinite(h).all():
            raise HeadInputError("the input has a value that is not a finite number")
        last = len(self._linears) - 1
        for i, (weight_t, bias, _) in enumerate(self._linears):
            h = h @ weight_t.astype(np.float64) + bias.astype(np.float64)
            if i < last:
                np.maximum(h, 0.0, out=h)
        if self._final == "sigmoid":
            log_scores = -np.logaddexp(0.0, -h)  # log σ(z), exact for any finite z
            scores = np.exp(log_scores)
            if self.output == "sigmoid_normalized":
                # σ_i / Σσ_j as a softmax of log σ: the largest term is exp(0) = 1, so the sum is in [1, K]
                # and no term is lost to rounding however small the sigmoids are.
                relative = np.exp(log_scores - log_scores.max())
                probabilities = relative / relative.sum()
            else:
                probabilities = scores
        else:
            z = np.exp(h - h.max())
            scores = probabilities = z / z.sum()
        return scores.astype(np.float32), probabilities.astype(np.float32)

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

    def ambiguous(self, probabilities: F32) -> np.ndarray | None:
        """Per row of ``probabilities``: below the head's ambiguity guard? ``None`` without a guard."""
        if self.ambiguity is None or len(self.classes) < 2:
            return None
        ordered = np.sort(probabilities, axis=1)
        top, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
        return np.asarray((top < self.ambiguity.min_top_probability) | (margin < self.ambiguity.min_margin))

    def predict(self, batch: F32) -> list[Prediction]:
        """Run and package a validated ``[N, input_dim]`` float32 batch."""
        scores, probabilities = self.forward(batch)
        low = self.ambiguous(probabilities)
        flags: list[bool | None] = [None] * len(probabilities) if low is None else [bool(f) for f in low]
        return [
            Prediction(self.classes, tuple(s.tolist()), tuple(p.tolist()), flag)
            for s, p, flag in zip(scores, probabilities, flags, strict=True)
        ]

"""Training time per head type on N feature vectors (default 10,000 × 512, 12 classes), this machine.

Synthetic clustered vectors (the time depends on N, the dimension and the classes, not on the images):
``python -m bench.bench_train`` (needs the 'train' and 'export' extras). Embedding speed (images/s) is
printed by weights/train_head.py itself and measured in the README's digits run.

Beside the trainer's logreg, the reference measured in the same run: the previous recipe — lbfgs on the
unit features as they are, each C of the sweep fitted from scratch (``logreg, previous``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np

from clip_export.head_training import (
    C_GRID,
    HEAD_TYPES,
    LOGREG,
    TRAINERS,
    Split,
    TrainOptions,
    log_loss,
    stratified_split,
    unit,
)
from clip_export.training_data import Dataset


def synthetic(n: int, dim: int = 512, k: int = 12, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = rng.normal(size=(k, dim))
    features = (centres[labels] + 2.0 * rng.normal(size=(n, dim))).astype(np.float32)
    return Dataset([f"class{i}" for i in range(k)], features, np.eye(k)[labels], [str(i) for i in range(n)])


def previous_logreg(data: Dataset, split: Split) -> tuple[float, float]:
    """The sweep as the trainer ran it before preconditioning: (seconds, test top-1)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    x = unit(data.features)
    start = time.perf_counter()
    best: tuple[float, Any] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for c in C_GRID:
            model = LogisticRegression(C=c, **LOGREG).fit(x[split.train], data.hard[split.train])
            loss = log_loss(model.predict_proba(x[split.validation]), data.targets[split.validation])
            if best is None or loss < best[0]:
                best = (loss, model)
    seconds = time.perf_counter() - start
    assert best is not None
    return seconds, float((best[1].predict(x[split.test]) == data.hard[split.test]).mean())


def run(n: int, max_epochs: int = 300, reference: bool = True) -> list[tuple[str, float, float]]:
    """(head type, seconds to train, test top-1) for each head type, and the previous logreg's."""
    data = synthetic(n)
    split = stratified_split(data.hard, data.classes, seed=0)
    rows: list[tuple[str, float, float]] = []
    if reference:
        rows.append(("logreg, previous", *previous_logreg(data, split)))
    for kind in HEAD_TYPES:
        start = time.perf_counter()
        trained = TRAINERS[kind](data, split, TrainOptions(mlp_max_epochs=max_epochs))
        seconds = time.perf_counter() - start
        accuracy = float(
            (trained.probabilities(data.features[split.test]).argmax(1) == data.hard[split.test]).mean()
        )
        rows.append((kind, seconds, accuracy))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--max-epochs", type=int, default=300, help="MLP epochs at most (early stopping)")
    args = parser.parse_args(argv)
    print(f"| head | train time, {args.n:,} vectors | test top-1 (synthetic) |")
    print("| --- | --- | --- |")
    for kind, seconds, accuracy in run(args.n, args.max_epochs):
        print(f"| {kind} | {seconds:.1f} s | {accuracy:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

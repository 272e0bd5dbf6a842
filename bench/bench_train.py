"""Training time per head type on N feature vectors (default 10,000 × 512, 12 classes), this machine.

Synthetic clustered vectors (the time depends on N, the dimension and the classes, not on the images):
``python -m bench.bench_train`` (needs the 'train' and 'export' extras). Embedding speed (images/s) is
printed by weights/train_head.py itself and measured in the README's digits run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from clip_export.head_training import HEAD_TYPES, TRAINERS, TrainOptions, stratified_split
from clip_export.training_data import Dataset


def synthetic(n: int, dim: int = 512, k: int = 12, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    centres = rng.normal(size=(k, dim))
    features = (centres[labels] + 2.0 * rng.normal(size=(n, dim))).astype(np.float32)
    return Dataset([f"class{i}" for i in range(k)], features, np.eye(k)[labels], [str(i) for i in range(n)])


def run(n: int, max_epochs: int = 300) -> list[tuple[str, float, float]]:
    """(head type, seconds to train, test top-1) for each head type."""
    data = synthetic(n)
    split = stratified_split(data.hard, data.classes, seed=0)
    rows: list[tuple[str, float, float]] = []
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

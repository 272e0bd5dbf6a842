"""Head latency: the NumPy head beside references, in one process.

    python bench/bench_head.py            # full run
    python bench/bench_head.py --quick    # a few iterations (what the test runs)

References: torch.nn (when the 'export' extra is installed) and a pure-Python forward pass like the
earlier TypeScript/Convex implementation's loops. Targets: single vector ≤ 20 µs median, a 1,000-vector
batch ≤ 2 ms median.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import WeightsDocument, parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS

TARGET_SINGLE_US = 20.0
TARGET_BATCH_MS = 2.0


def timeit(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and p95 seconds of ``repeat`` calls (after a warm-up)."""
    for _ in range(min(10, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def pure_python_forward(doc: WeightsDocument) -> Callable[[list[float]], list[float]]:
    layers = [
        (layer.type, getattr(layer, "weight", None), getattr(layer, "bias", None)) for layer in doc.layers
    ]

    def forward(x: list[float]) -> list[float]:
        norm = sum(v * v for v in x) ** 0.5
        h = [v / norm for v in x]
        for kind, w, b in layers:
            if kind == "linear":
                assert w is not None and b is not None
                h = [
                    sum(wi * hi for wi, hi in zip(row, h, strict=True)) + bi
                    for row, bi in zip(w, b, strict=True)
                ]
            elif kind == "relu":
                h = [max(0.0, v) for v in h]
            else:
                import math

                h = [1 / (1 + math.exp(-v)) for v in h]
        total = sum(h)
        return [v / total for v in h]

    return forward


def torch_reference(doc: WeightsDocument) -> Callable[[np.ndarray], Any] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    modules: list[Any] = []
    arrays = doc.arrays()
    for i, (w, b) in enumerate(arrays):
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        modules += [linear] if i == len(arrays) - 1 else [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*modules, torch.nn.Sigmoid()).eval()

    def forward(x: np.ndarray) -> Any:
        with torch.inference_mode():
            s = model(torch.nn.functional.normalize(torch.from_numpy(x), dim=-1))
            return s / s.sum(dim=-1, keepdim=True)

    return forward


def run(quick: bool = False) -> list[tuple[str, str, float, float, str]]:
    doc = parse_weights(EXAMPLE_WEIGHTS.read_bytes())
    head = Head(doc)
    rng = np.random.default_rng(0)
    one = rng.normal(size=(1, 512)).astype(np.float32)
    batch = rng.normal(size=(1000, 512)).astype(np.float32)
    reps_single, reps_batch = (50, 5) if quick else (5000, 300)

    rows: list[tuple[str, str, float, float, str]] = []
    med, p95 = timeit(lambda: head.forward(one), reps_single)
    rows.append(("numpy head: forward", "1 vector", med * 1e6, p95 * 1e6, f"≤ {TARGET_SINGLE_US:.0f} µs"))
    med, p95 = timeit(lambda: head.predict(one), reps_single)
    rows.append(("numpy head: forward+package", "1 vector", med * 1e6, p95 * 1e6, ""))
    med, p95 = timeit(lambda: head.forward(batch), reps_batch)
    rows.append(
        ("numpy head: forward", "1000 vectors", med * 1e6, p95 * 1e6, f"≤ {TARGET_BATCH_MS * 1000:.0f} µs")
    )

    reference = torch_reference(doc)
    if reference is not None:
        med, p95 = timeit(lambda: reference(one), reps_single)
        rows.append(("torch.nn (1 thread)", "1 vector", med * 1e6, p95 * 1e6, "reference"))
        med, p95 = timeit(lambda: reference(batch), reps_batch)
        rows.append(("torch.nn (1 thread)", "1000 vectors", med * 1e6, p95 * 1e6, "reference"))
    slow = pure_python_forward(doc)
    vector = one[0].tolist()
    med, p95 = timeit(lambda: slow(vector), 3 if quick else 20)
    rows.append(("pure Python loops (earlier app)", "1 vector", med * 1e6, p95 * 1e6, "reference"))
    return rows


def render(rows: list[tuple[str, str, float, float, str]]) -> str:
    lines = [f"{'implementation':<38} {'input':<13} {'median µs':>11} {'p95 µs':>11}  target", "-" * 90]
    lines += [
        f"{name:<38} {inp:<13} {med:>11.1f} {p95:>11.1f}  {target}" for name, inp, med, p95, target in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(render(run(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

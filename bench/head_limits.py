"""A head file at the size limit: its parse's peak memory and time, in a fresh process, beside the memory
of the functions that load it. The worst case for memory is the shortest numbers (``0.5``: four bytes of
text each become a float object and a list slot), in a valid head: a 512→H→12 MLP whose H fills the file.

    python -m bench.head_limits              # at MAX_WEIGHTS_BYTES (16 MiB)
    python -m bench.head_limits --mib 4      # smaller, quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from clip_classifier.head.weights_format import MAX_WEIGHTS_BYTES, content_sha256

#: The functions that load heads, and their memory (template.yaml).
FUNCTION_MEMORY_MB = {
    "ScoreFeaturesFunction (API)": 512,
    "RescoreResultsFunction": 512,
    "ClassifyUploadFunction": 1769,
}

PROBE = """
import sys, time
from pathlib import Path
def hwm():
    return int(next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")).split()[1]) / 1024
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
raw = Path(sys.argv[1]).read_bytes()
before = hwm()
start = time.perf_counter()
head = Head(parse_weights(raw))
print(before, hwm(), time.perf_counter() - start, head.input_dim)
"""


def worst_case_head(limit: int) -> bytes:
    """A valid 512→H→12 head of at most ``limit`` bytes, every weight written as ``0.5``."""
    hidden = max(1, (limit - 4096) // (512 * 4 + 12 * 4 + 8))
    w1, b1 = np.full((hidden, 512), 0.5, np.float32), np.zeros(hidden, np.float32)
    w2, b2 = np.full((12, hidden), 0.5, np.float32), np.zeros(12, np.float32)
    classes = [f"c{i}" for i in range(12)]
    doc = {
        "format": "clip-head-weights", "format_version": 1, "head_type": "mlp", "classes": classes,
        "input_dim": 512, "input_normalization": "l2",
        "layers": [{"type": "linear", "weight": "W1", "bias": "B1"}, {"type": "relu"},
                   {"type": "linear", "weight": "W2", "bias": "B2"}, {"type": "sigmoid"}],
        "output": "sigmoid_normalized", "provenance": {"created_at": "2026-01-01T00:00:00Z"},
        "content_sha256": content_sha256(classes=classes, input_dim=512, input_normalization="l2",
                                         layer_types=["linear", "relu", "linear", "sigmoid"],
                                         linear=[(w1, b1), (w2, b2)], output="sigmoid_normalized"),
    }  # fmt: skip
    text = json.dumps(doc, separators=(",", ":"))

    def matrix(rows: int, cols: int) -> str:
        row = "[" + ",".join(["0.5"] * cols) + "]"
        return "[" + ",".join([row] * rows) + "]"

    for name, value in (("W1", matrix(hidden, 512)), ("B1", "[" + ",".join(["0"] * hidden) + "]"),
                        ("W2", matrix(12, hidden)), ("B2", "[" + ",".join(["0"] * 12) + "]")):  # fmt: skip
        text = text.replace(f'"{name}"', value, 1)
    return text.encode()


def measure(limit: int) -> dict[str, float]:
    raw = worst_case_head(limit)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.json"
        path.write_bytes(raw)
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
        )
    before, after, seconds, _ = (float(x) for x in out.stdout.split())
    return {
        "bytes": len(raw),
        "before_mb": before,
        "peak_mb": after,
        "parse_mb": after - before,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=float, default=MAX_WEIGHTS_BYTES / 1024 / 1024)
    args = parser.parse_args(argv)
    row = measure(int(args.mib * 1024 * 1024))
    print("| head file | parse time | peak RSS of the process | of which the parse | function memory |")
    print("| --- | --- | --- | --- | --- |")
    memory = ", ".join(f"{name} {mb} MB" for name, mb in FUNCTION_MEMORY_MB.items())
    print(
        f"| {row['bytes'] / 1024 / 1024:.1f} MiB of `0.5`s (512→H→12) | {row['seconds']:.2f} s | "
        f"{row['peak_mb']:.0f} MB | {row['parse_mb']:.0f} MB ({row['parse_mb'] * 1024 * 1024 / row['bytes']:.1f}× the file) | {memory} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The pipeline benchmark runs end to end on the tiny model and prints its table (figures are for people)."""

from __future__ import annotations

import subprocess
import sys

from clip_local.paths import REPO_ROOT


def test_bench_pipeline_quick_prints_every_stage() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_pipeline.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out = result.stdout
    for row in (
        "ours: decode + preprocess (fast)",
        "ours: embed (int8 onnxruntime)",
        "ours: end to end",
        "ours: end to end − (b), paired per round",
        "(b) bare int8 session",
        "transfer, then decode + preprocess",
        "ours: decode while transferring",
        "imports + model + weights (init)",
    ):
        assert row in out, row
    assert "peak_rss_mb:" in out and "fast_vs_exact_cosine" in out

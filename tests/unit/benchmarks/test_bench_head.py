"""The head benchmark runs and prints its table (figures are read by people, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from clip_local.paths import REPO_ROOT


def test_bench_head_prints_a_table() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_head.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["implementation", "input"]
    assert any(line.startswith("numpy head: forward") and "1000 vectors" in line for line in lines)
    assert any(line.startswith("pure Python loops") for line in lines)

"""The review-queue benchmark runs and prints its table; that a page reads only itself is a fact of the
index (items read = items returned), not a timing, so it is checked."""

from __future__ import annotations

import subprocess
import sys

from clip_local.paths import REPO_ROOT


def test_bench_review_queue_prints_a_table_and_the_index_reads_only_the_page() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.review_queue", "--items", "1500", "--limit", "20"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1,500 results") and lines[1].split()[:2] == ["how", "returned"]
    index = lines[2].split()
    assert lines[2].startswith("ReviewQueue index Query") and index[-4:-2] == ["20", "20"]
    scan = lines[3].split()
    assert lines[3].startswith("reference: Scan") and scan[-3] == "1,500"
    assert lines[4] == "same page both ways: True"

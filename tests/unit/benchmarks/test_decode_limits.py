"""The hardest decode inputs in fresh processes: each ends as stated, well inside the upload function's
memory (1,769 MB) and timeout (60 s). Loose bounds; the measured figures are in the README."""

from __future__ import annotations

from bench.decode_limits import render, run
from tests.corpus.images import round_two_cases

EXPECTED = {
    "40 MP RGBA PNG, EXIF rotation 6": "classified",
    "40 MP progressive JPEG, 100 scans (the limit)": "classified",
} | {c.case: c.expected for c in round_two_cases()}


def test_peak_memory_and_time_stay_bounded() -> None:
    rows = run()
    print(render(rows))
    assert [name for name, _ in rows] == list(EXPECTED)
    for name, measured in rows:
        assert measured["outcome"] == EXPECTED[name], (name, measured)
        assert float(measured["peak_rss_mb"]) < 1200, (name, measured)
        assert float(measured["seconds"]) < 20, (name, measured)

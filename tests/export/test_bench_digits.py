"""bench/bench_digits.py (the README's digits figures) runs end to end on a quick subset."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn", reason="the 'train' extra")
pytestmark = pytest.mark.export

from bench.bench_digits import main  # noqa: E402


def test_the_digits_benchmark_trains_and_reports_the_pixel_anchor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--limit", "300", "--head-type", "logreg"]) == 0
    out = capsys.readouterr().out
    assert "logreg" in out and "<- chosen" in out
    anchor = float(out.rsplit("test top-1", 1)[1])
    assert 0.8 <= anchor <= 1.0  # raw-pixel logistic regression on digits is a strong baseline

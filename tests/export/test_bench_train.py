"""bench/bench_train.py runs (small N) and every head learns the synthetic clusters."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn", reason="the 'train' extra")
pytestmark = pytest.mark.export

from bench.bench_train import main  # noqa: E402


def test_every_head_trains_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--n", "400", "--max-epochs", "30"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines()[2:]]
    assert [row[1].strip() for row in rows] == ["logreg, previous", "prototype", "logreg", "mlp"]
    assert all(float(row[3]) > 0.5 for row in rows), rows  # 12 classes: chance is 0.083

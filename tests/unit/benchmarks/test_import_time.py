"""bench/import_time.py runs and prints its table (its figures are the benchmark's, not asserted here)."""

from __future__ import annotations

import pytest

from bench.import_time import TARGETS, main


def test_the_import_time_table_has_every_handler(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs", "1"]) == 0
    table = capsys.readouterr().out
    for name in TARGETS:
        assert f"| {name} |" in table

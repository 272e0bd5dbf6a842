"""bench/item_size.py: the two embedding layouts' bytes, item sizes, write units and fidelity, as it prints."""

from __future__ import annotations

import pytest

from bench.item_size import main, rows
from clip_local.paths import TINY_MODEL_DIR


def test_int8_halves_the_embedding_and_saves_a_write_unit_at_a_measured_fidelity() -> None:
    (old, float16_bytes, old_item, old_units, old_200, old_fixtures), new = rows(TINY_MODEL_DIR / "int8")
    name, int8_bytes, new_item, new_units, new_200, new_fixtures = new
    assert old.startswith("float16") and name.startswith("int8")
    assert (float16_bytes, int8_bytes) == (1032, 521)
    assert (old_units, new_units) == (3, 2) and old_item - new_item >= 511
    assert old_200.least_cosine >= 0.99999 and old_fixtures.least_cosine >= 0.99999
    assert new_200.least_cosine >= 0.999 and new_fixtures.least_cosine >= 0.9999  # measured 0.99929, 0.99996
    assert new_200.largest_change <= 1e-4 and new_fixtures.largest_change <= 1e-4  # 2.0e-5, 3.4e-6


def test_the_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["layout", "embedding", "B", "item"]
    assert lines[2].startswith("float16 (codec 1)") and lines[3].startswith("int8 (codec 2)")

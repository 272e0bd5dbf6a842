"""bench/head_limits.py: its worst-case head is valid and at the size asked for, and its table prints."""

from __future__ import annotations

import pytest

from bench.head_limits import main, worst_case_head
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights


def test_the_worst_case_head_is_a_valid_head_of_the_size_asked_for() -> None:
    raw = worst_case_head(1024 * 1024)
    assert 0.9 * 1024 * 1024 < len(raw) <= 1024 * 1024
    assert Head(parse_weights(raw)).input_dim == 512


def test_the_table_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mib", "0.5"]) == 0
    assert "× the file" in capsys.readouterr().out

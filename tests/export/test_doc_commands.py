"""The pages' offline commands that need the export and train extras, run as written by bash, in the order
a reader meets them: a tiny CLIP with its text tower → a zero-shot head from the example prompts; the
digits as image folders → a trained head → that head on the local stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clip_classifier.head.weights_format import parse_weights
from clip_local.paths import REPO_ROOT
from tests.docs.commands import documented, shell_env

pytestmark = pytest.mark.export
COMMANDS = {c.words.split()[1]: c for c in documented("tests/export/test_doc_commands.py")}


def run(name: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-c", COMMANDS[name].text], cwd=REPO_ROOT, env=shell_env(), capture_output=True, text=True,
        check=False, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, f"{COMMANDS[name].words}\n{result.stderr[-3000:]}"
    return result


def test_the_commands_are_the_ones_the_pages_show() -> None:
    assert set(COMMANDS) == {
        "weights/export_clip_onnx.py", "weights/zero_shot_head.py", "-m", "weights/train_head.py", "local",
    }  # fmt: skip


def test_a_zero_shot_head_offline() -> None:
    run("weights/export_clip_onnx.py")
    run("weights/zero_shot_head.py")
    head = parse_weights(Path("/tmp/zero-shot-head.json").read_bytes())
    labels = (REPO_ROOT / "weights" / "example" / "classes.txt").read_text().split("\n")
    assert head.head_type == "zero_shot" and head.classes == [
        x for x in labels if x and not x.startswith("#")
    ]


def test_a_trained_head_offline_then_on_the_local_stack() -> None:
    run("-m")  # python -m bench.bench_digits --write-folders /tmp/digits
    run("weights/train_head.py")
    head = json.loads(Path("/tmp/digits-head.json").read_text())
    assert head["head_type"] == "logreg" and head["classes"] == [str(d) for d in range(10)]
    table = run(
        "local"
    ).stdout  # make local ARGS="--weights /tmp/digits-head.json --images /tmp/digits/7 --once"
    rows = [line.split() for line in table.splitlines() if line.endswith(".png") or ".png " in line]
    labels = [row[2] for row in rows if len(row) > 2 and row[1] == "classified"]
    assert len(labels) == len(list(Path("/tmp/digits/7").iterdir())) > 150
    assert labels.count("7") / len(labels) > 0.8, labels

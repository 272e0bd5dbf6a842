"""The pages' commands against the local stack, run as written by bash: the curl calls of the README and
docs/api.md on a served stack, and docs/batch-jobs.md's local backfill and rescore."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clip_local.paths import REPO_ROOT
from tests.docs.commands import documented, shell_env
from tests.integration.test_local_main import FIXTURES, free_port

COMMANDS = documented("tests/integration/test_doc_commands.py")


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    """``make local``'s stack (python -m clip_local), serving on free ports."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clip_local", "--images", str(FIXTURES), "--port", str(port),
         "--moto-port", str(free_port())],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/model", headers={"x-api-key": "local-dev-key"}
    )
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(request, timeout=2):
                    break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, env=shell_env(), capture_output=True, text=True,
        check=False, timeout=900,
    )  # fmt: skip


def test_the_curl_commands_answer_as_the_pages_say(served: int) -> None:
    curls = [c for c in COMMANDS if c.words.startswith("curl")]
    assert len(curls) == 4  # the README's and docs/api.md's
    answers = []
    for command in curls:
        result = run(command.text.replace("127.0.0.1:3000", f"127.0.0.1:{served}"))
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    model, _, scored, stored = answers
    assert len(model["classes"]) == 12 and model["embedder"]["outputDim"] == 512
    assert scored["pictureId"] == "demo-1" and scored["stored"] is True
    assert abs(sum(scored["probabilities"].values()) - 1) < 1e-5
    assert stored["pictureId"] == "demo-1" and stored["topLabel"] == scored["topLabel"]


def test_the_local_backfill_and_rescore_commands() -> None:
    makes = [c for c in COMMANDS if c.words.startswith("make local")]
    assert [c.words for c in makes] == [
        'make local ARGS="backfill --copies 10 --once"',
        'make local ARGS="rescore --once"',
    ]
    fixtures = len([p for p in FIXTURES.iterdir() if p.is_file()])
    backfill = run(makes[0].text)
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    assert "backfill: SUCCEEDED" in backfill.stdout and f"  classified {10 * fixtures}" in backfill.stdout
    rescore = run(makes[1].text)
    assert rescore.returncode == 0, rescore.stderr[-3000:]
    assert "rescore: SUCCEEDED" in rescore.stdout and f"  rescored {fixtures}" in rescore.stdout


def test_the_heads_commands_on_the_served_stack(served: int) -> None:
    """docs/heads.md's walk through the registry, as written, against make local's stack (it writes the
    .local/outputs.json that --local reads)."""
    walk = [c for c in COMMANDS if c.words.startswith(("python -m clip_local.heads", "clip-classifier"))]
    assert [c.words.split(" --")[0] if c.words.startswith("python") else " ".join(c.words.split()[:4]) for c in walk] == [
        "python -m clip_local.heads", "python -m clip_local.heads",
        "clip-classifier --local heads add", "clip-classifier --local heads add",
        "clip-classifier --local heads activate", "clip-classifier --local heads evaluate",
        "clip-classifier --local heads activate", "clip-classifier --local heads rollback",
        "clip-classifier --local heads list", "clip-classifier classify tests/fixtures/images --head",
    ]  # fmt: skip
    written = REPO_ROOT / ".local" / "outputs.json"
    for _ in range(120):  # written once the served stack has printed its table
        if written.is_file():
            break
        time.sleep(0.5)
    outputs = {}
    for command in walk:
        result = run(command.text)
        assert result.returncode == 0, f"{command.words}\n{result.stderr[-3000:]}"
        outputs[command.words] = result.stdout
    evaluated = next(v for k, v in outputs.items() if " evaluate " in k)
    fixtures = len([p for p in FIXTURES.iterdir() if p.is_file()])
    assert "items compared:" in evaluated and "top label agrees:" in evaluated
    compared = int(
        next(line for line in evaluated.splitlines() if line.startswith("items compared:")).split()[-1]
    )
    assert 0 < compared <= fixtures
    activated = next(v for k, v in outputs.items() if k.endswith("--rescore"))
    assert "rescore started: arn:aws:states:" in activated
    listed = outputs["clip-classifier --local heads list"]
    heads = [line for line in listed.splitlines() if re.match(r"^[0-9a-f]{12}  ", line)]
    assert len(heads) == 3, listed  # the first head the stack registered, and the two of the walk
    assert "rollback would return to" in listed
    table = outputs[walk[-1].words]
    assert table.splitlines()[0].split()[:2] == ["file", "status"] and "wrote /tmp/results.csv" in table
    assert len(Path("/tmp/results.csv").read_text().splitlines()) == fixtures + 1

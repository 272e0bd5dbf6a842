"""The pages' commands against the local stack, run as written by bash: the curl calls of the README and
docs/api.md on a served stack, and docs/batch-jobs.md's local backfill and rescore."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

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

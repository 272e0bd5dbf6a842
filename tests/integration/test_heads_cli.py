"""Heads as versions end to end on the local stack, driven through the installed console script
(``clip-classifier --local``): register two heads, evaluate the candidate on 1,000+ stored results (the
report equals a direct NumPy computation over the stored embeddings), activate it, see new uploads and
``GET /v1/model`` change, roll back, see them return; refusals are one line."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_local.heads import prototype_head
from clip_local.paths import REPO_ROOT
from clip_local.stack import LocalStack, local_stack
from tests.helpers import encode, small_doc
from tests.integration.test_local_main import free_port

CLI = Path(sys.executable).with_name("clip-classifier")
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
STORED = 1_200


def cli(outputs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "--local", "--outputs", str(outputs), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def cli_json(outputs: Path, *args: str) -> Any:
    done = cli(outputs, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Every check of the active head's ETag happens at once: an activation is served by the next request.
    with local_stack(quiet=True, extra_env={"WEIGHTS_REFRESH_SECONDS": "0"}) as running:
        yield running


@pytest.fixture(scope="module")
def heads_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("heads")
    first = prototype_head(1)
    (folder / "first.json").write_bytes(first)
    (folder / "candidate.json").write_bytes(prototype_head(2, nudge_of=first))
    wide = small_doc()  # a valid head of 4 features: the deployed model outputs 512
    (folder / "wide.json").write_bytes(encode(wide))
    return folder


@pytest.fixture(scope="module")
def stored(stack: LocalStack) -> int:
    """Real uploads of the fixtures, and 1,200 stored results with embeddings (written as the upload path
    writes them), plus items an evaluation must count but never score."""
    for path in sorted(FIXTURES.iterdir()):
        stack.upload_file(path.name, path.read_bytes())
    served = stack.upload.function().classifier.embedder.version
    head = stack.score.function().service.weights.get()
    rng = np.random.default_rng(11)
    items = []
    for i in range(STORED):
        stored_bytes, features = embedding_codec.round_trip(rng.normal(size=512).astype(np.float32))
        prediction = head.predict(features)[0]
        source = SourceInfo(type="s3", bucket=stack.upload_bucket, key=f"uploads/stored-{i}.jpg")
        items.append(
            ClassificationItem.classified(
                f"stored-{i}",
                ResultFields.from_prediction(prediction, head_version=head.version),
                source=source,
                embedder_version=served if i % 100 else "f" * 64,  # 12 from another embedder
                embedding=stored_bytes,
                sequencer=f"{i:020d}",
            )
        )
    for item in items:
        assert stack.results.put_if_newer(item)
    return STORED


def model_info(stack: LocalStack) -> dict[str, Any]:
    request = urllib.request.Request(f"{stack.api.url}/api/v1/model", headers={"x-api-key": stack.api_key})
    with urllib.request.urlopen(request, timeout=30) as response:
        info: dict[str, Any] = json.loads(response.read())
    return info


def upload_version(stack: LocalStack, name: str) -> str | None:
    stack.upload_file(name, (FIXTURES / "landscape_rgb.jpg").read_bytes())
    item = stack.result(picture_id_for_key(stack.key_prefix + name, stack.key_prefix))
    assert item is not None and item.status == "classified"
    return item.head_version


def direct_figures(
    stack: LocalStack, active: Head, candidate: Head
) -> tuple[int, int, dict[tuple[str, str], int]]:
    """(compared, agreeing, flips) over every stored embedding from the deployed model, by NumPy."""
    served = stack.upload.function().classifier.embedder.version
    rows = []
    page = stack.results.scan_segment(0, 1, start_key=None, limit=10_000)
    while True:
        rows += [
            embedding_codec.head_input(item.embedding, 512)
            for item in page.items
            if item.status == "classified" and item.embedding is not None and item.embedder_version == served
        ]
        if page.next_key is None:
            break
        page = stack.results.scan_segment(0, 1, start_key=page.next_key, limit=10_000)
    x = np.concatenate(rows)
    ta = active.forward(x)[1].argmax(axis=1)
    tc = candidate.forward(x)[1].argmax(axis=1)
    flips: dict[tuple[str, str], int] = {}
    for a, c in zip(ta, tc, strict=True):
        if a != c:
            flips[(active.classes[a], candidate.classes[c])] = (
                flips.get((active.classes[a], candidate.classes[c]), 0) + 1
            )
    return len(x), int((ta == tc).sum()), flips


def test_register_evaluate_activate_and_roll_back_through_the_console_script(
    stack: LocalStack, outputs: Path, heads_dir: Path, stored: int
) -> None:
    listed = cli_json(outputs, "heads", "list")
    (example,) = listed["heads"]
    assert example["status"] == "active" and listed["active"]["version"] == example["version"]
    assert listed["served"] == example["version"]
    assert model_info(stack)["head"]["version"] == example["version"]

    # Two heads: a first one, activated, and a candidate that differs from it on some items.
    first = cli_json(outputs, "heads", "add", str(heads_dir / "first.json"))["head"]["version"]
    added = cli(outputs, "heads", "add", str(heads_dir / "candidate.json"))
    assert added.returncode == 0 and added.stdout.startswith("registered "), added.stderr
    candidate = parse_weights((heads_dir / "candidate.json").read_bytes()).content_sha256
    again = cli_json(outputs, "heads", "add", str(heads_dir / "candidate.json"))
    assert again["registered"] is False and again["head"]["version"] == candidate
    activated = cli(outputs, "heads", "activate", first[:12])
    assert activated.returncode == 0 and activated.stdout.startswith(f"activated {first[:12]} (prototype"), (
        activated.stderr
    )
    assert upload_version(stack, "first.jpg") == first

    evaluated = cli_json(outputs, "heads", "evaluate", candidate[:10])
    report = evaluated["report"]
    active_head = Head(parse_weights((heads_dir / "first.json").read_bytes()))
    candidate_head = Head(parse_weights((heads_dir / "candidate.json").read_bytes()))
    compared, agreeing, flips = direct_figures(stack, active_head, candidate_head)
    assert compared >= 1_000 and report["compared"] == compared
    assert 0 < agreeing < compared, "the candidate agrees with the active head on some items, not all"
    assert report["agreement"] == agreeing / compared and report["flips"] == compared - agreeing
    assert {(a, c): n for a, row in report["flipMatrix"].items() for c, n in row.items()} == flips
    assert report["notCompared"] == {"embedder_changed": 12}
    assert report["active"]["version"] == first and report["candidate"]["version"] == candidate

    shown = cli(outputs, "heads", "show", candidate[:12])
    assert shown.returncode == 0
    assert (
        f"items compared:      {compared}" in shown.stdout
        and "largest flips (active → candidate):" in shown.stdout
    )
    assert cli_json(outputs, "heads", "show", candidate[:12])["report"]["runId"] == evaluated["runId"]

    activated_json = cli_json(outputs, "heads", "activate", candidate[:12])
    assert activated_json == {
        "active": candidate, "previous": first, "unchanged": False, "refreshSeconds": 0.0
    }  # fmt: skip
    info = model_info(stack)
    assert info["headVersion"] == info["head"]["version"] == candidate
    assert info["head"]["activatedBy"].startswith("local:") and info["head"]["registeredBy"].startswith(
        "local:"
    )
    assert upload_version(stack, "after.jpg") == candidate

    rolled = cli(outputs, "heads", "rollback")
    assert rolled.returncode == 0 and rolled.stdout.startswith(f"rolled back to {first[:12]}")
    assert model_info(stack)["head"]["version"] == first
    assert upload_version(stack, "rolled-back.jpg") == first
    statuses = {h["version"]: h["status"] for h in cli_json(outputs, "heads", "list")["heads"]}
    assert statuses == {example["version"]: "retired", first: "active", candidate: "retired"}


def test_refusals_are_one_line(stack: LocalStack, outputs: Path, heads_dir: Path) -> None:
    wide = cli(outputs, "heads", "add", str(heads_dir / "wide.json"))
    assert wide.returncode == 1 and wide.stdout == ""
    assert wide.stderr.strip().splitlines() == [
        f"clip-classifier: head {heads_dir / 'wide.json'} expects 4 features but the embedder this stack serves "
        f"({stack.upload.function().classifier.embedder.version[:12]}…) outputs 512"
    ]
    unknown = cli(outputs, "heads", "activate", "0123456789ab")
    assert (unknown.returncode, unknown.stderr) == (
        1, "clip-classifier: no registered head has a version starting 0123456789ab\n"
    )  # fmt: skip
    active = stack.registry.active()
    assert active is not None
    same = cli(outputs, "heads", "evaluate", active.version[:12])
    assert same.returncode == 1 and "is the active head" in same.stderr
    missing = subprocess.run(
        [str(CLI), "--local", "--outputs", str(outputs.with_name("absent.json")), "heads", "list"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no local stack is running" in missing.stderr
    stale = outputs.with_name("stale.json")
    document = json.loads(outputs.read_text())
    stale.write_text(json.dumps({**document, "endpoint": f"http://127.0.0.1:{free_port()}"}))
    left = subprocess.run(
        [str(CLI), "--local", "--outputs", str(stale), "heads", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert left.returncode == 1 and left.stderr.startswith(
        "clip-classifier: no local stack answers at http://"
    )
    assert "Traceback" not in wide.stderr + unknown.stderr + same.stderr + missing.stderr


def test_list_and_show_tables(stack: LocalStack, outputs: Path) -> None:
    listed = cli(outputs, "heads", "list")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["version", "status", "type", "classes", "registered", "evaluated", "source"]
    active = stack.registry.active()
    assert active is not None
    assert any(line.startswith(active.version[:12]) and " active " in line for line in lines[2:])
    assert f"active: {active.version[:12]}" in listed.stdout
    shown = cli(outputs, "heads", "show", active.version)
    assert shown.stdout.splitlines()[0] == f"version:         {active.version}"
    assert (
        "random example head (its labels mean nothing)" in shown.stdout
    )  # the prototype heads are examples too


def test_classify_a_folder_without_a_stack_as_a_table_csv_and_json(tmp_path: Path) -> None:
    csv_path = tmp_path / "results.csv"
    args = ["classify", str(FIXTURES), "--head", str(REPO_ROOT / "weights/example/example_head.json")]
    args += ["--model-dir", str(REPO_ROOT / "weights/models/tiny/int8")]
    table = subprocess.run(
        [str(CLI), *args, "--csv", str(csv_path)], capture_output=True, text=True, check=False
    )
    assert table.returncode == 0, table.stderr
    files = sorted(p.name for p in FIXTURES.iterdir() if p.is_file())
    assert table.stdout.splitlines()[0].split() == ["file", "status", "top", "label", "p(top)", "second"]
    rows = csv_path.read_text().splitlines()
    assert len(rows) == len(files) + 1 and rows[0].startswith(
        "file,status,top_label,top_probability,error,portrait"
    )
    as_json = json.loads(
        subprocess.run([str(CLI), "--json", *args], capture_output=True, text=True, check=True).stdout
    )
    assert sorted(r["file"] for r in as_json["results"]) == files
    classified = [r for r in as_json["results"] if r["status"] == "classified"]
    failed = [r for r in as_json["results"] if r["status"] == "failed"]
    assert classified and all(len(r["top"]) == 3 for r in classified)
    assert all(r["error"] for r in failed)  # the deliberately broken fixtures, each with its reason
    missing = subprocess.run(
        [str(CLI), "classify", str(FIXTURES), "--head", "abcdef123456"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 1 and "needs --stack NAME or --local" in missing.stderr


def test_init_records_the_model_and_activates_a_first_head(stack: LocalStack, outputs: Path) -> None:
    before = stack.registry.active()
    assert before is not None
    done = cli(
        outputs, "heads", "init", "--model-dir", str(REPO_ROOT / "weights/models/tiny/int8"),
        "--head", str(REPO_ROOT / "weights/example/example_head.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("the registry checks heads against ") and "512 features" in lines[0]
    assert lines[1].startswith("already registered ") and lines[2].startswith("activated ")
    example = parse_weights((REPO_ROOT / "weights/example/example_head.json").read_bytes()).content_sha256
    rolled = cli_json(outputs, "heads", "rollback")
    assert rolled == {
        "active": before.version,
        "previous": example,
        "unchanged": False,
        "refreshSeconds": 0.0,
    }

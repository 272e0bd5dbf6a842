"""The review loop's operator side on the local stack, through the installed console script: with a head
whose guard marks part of 240 stored results ambiguous, the queue holds exactly those, most uncertain first
and page by page; labels go beside the machine's result and take items out of the queue; a rescore under
another head keeps every label; ``labels export`` writes the labelled embeddings as the trainer reads them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import WeightsDocument, document_sha256, parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.review_queue import margin
from clip_local.heads import prototype_head
from clip_local.stack import LocalStack, local_stack
from tests.helpers import event_bus_queue
from tests.integration.test_heads_cli import cli, cli_json
from tests.unit.events.test_bridge import received
from tests.unit.events.test_messages import validate

STORED = 240


def guarded(raw: bytes, min_margin: float) -> bytes:
    """The head with an ambiguity guard: results whose top-1/top-2 margin is under ``min_margin``."""
    doc = json.loads(raw)
    doc["ambiguity"] = {"min_top_probability": 0.0, "min_margin": min_margin, "fitted": {"test": True}}
    doc["content_sha256"] = document_sha256(WeightsDocument.model_validate(doc))  # the guard is hashed too
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    env = {"WEIGHTS_REFRESH_SECONDS": "0", "EVENT_BUS_NAME": "clip-events"}  # PublishEvents=true
    with local_stack(quiet=True, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def seen(stack: LocalStack) -> str:
    """A queue a rule on the stack's bus delivers every event to (as a webhook's rule would)."""
    return event_bus_queue(stack.client("events"), stack.client("sqs"))


@pytest.fixture(scope="module")
def head(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Head:
    path = tmp_path_factory.mktemp("heads") / "guarded.json"
    path.write_bytes(guarded(prototype_head(3), min_margin=0.2))
    stack.activate_head(path)
    return Head(parse_weights(path.read_bytes()))


@pytest.fixture(scope="module")
def stored(stack: LocalStack, head: Head) -> dict[str, ClassificationItem]:
    """240 results as the upload path writes them (embedding kept, the review queue's fields set)."""
    served = stack.upload.function().classifier.embedder.version
    rng = np.random.default_rng(5)
    items = {}
    for i in range(STORED):
        stored_bytes, features = embedding_codec.round_trip(rng.normal(size=512).astype(np.float32))
        item = ClassificationItem.classified(
            f"r-{i:03d}",
            ResultFields.from_prediction(head.predict(features)[0], head_version=head.version),
            source=SourceInfo(type="s3", bucket=stack.upload_bucket, key=f"uploads/r-{i:03d}.jpg"),
            embedder_version=served,
            embedding=stored_bytes,
            sequencer=f"{i:020d}",
        )
        assert stack.results.put_if_newer(item)
        items[item.picture_id] = item
    return items


def whole_queue(outputs: Path, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = cli_json(
            outputs, "review", "list", "--limit", str(limit), *(["--cursor", cursor] if cursor else [])
        )
        rows += page["items"]
        cursor = page["cursor"]
        if cursor is None:
            return rows


def test_the_queue_holds_exactly_the_ambiguous_results_most_uncertain_first(
    outputs: Path, stored: dict[str, ClassificationItem]
) -> None:
    ambiguous = sorted(
        (i for i in stored.values() if i.ambiguous), key=lambda i: (margin(i.top or []), i.picture_id)
    )
    assert 20 <= len(ambiguous) < STORED  # the guard marks part of them
    rows = whole_queue(outputs, limit=50)
    assert [r["pictureId"] for r in rows] == [i.picture_id for i in ambiguous]
    margins = [r["margin"] for r in rows]
    assert margins == sorted(margins) and all(m < 0.2 for m in margins)
    assert all(len(r["top"]) == 3 and r["key"].startswith("uploads/") for r in rows)


def test_labels_leave_the_queue_survive_a_rescore_and_export_for_the_trainer(
    stack: LocalStack,
    outputs: Path,
    head: Head,
    stored: dict[str, ClassificationItem],
    seen: str,
    tmp_path: Path,
) -> None:
    queue = [r["pictureId"] for r in whole_queue(outputs, limit=100)]
    first, second, third = queue[:3]
    labelled = cli_json(outputs, "review", "label", first, head.classes[4])
    assert labelled["personLabel"] == head.classes[4] and labelled["labeledBy"].startswith("local:")
    cli_json(outputs, "review", "label", second, "none of these")
    cli_json(outputs, "review", "label", third, head.classes[0])
    refused = cli(outputs, "review", "label", queue[3], "kitten")
    assert (
        refused.returncode == 1
        and 'label "kitten" is not one of the active head\'s 12 classes' in refused.stderr
    )
    unknown = cli(outputs, "review", "label", "no-such-picture", head.classes[0])
    assert (
        unknown.returncode == 1 and "no classified result for pictureId 'no-such-picture'" in unknown.stderr
    )
    assert [r["pictureId"] for r in whole_queue(outputs, limit=100)] == queue[3:]
    announced = received(stack.client("sqs"), seen)
    assert [(e["detail-type"], e["detail"]["pictureId"]) for e in announced] == [
        ("Label Added", first),
        ("Label Added", second),
        ("Label Added", third),
    ]
    for event in announced:
        validate(event)
    assert announced[0]["detail"]["label"] == head.classes[4] and announced[0]["detail"][
        "labeledBy"
    ].startswith("local:")
    # Withdrawn: the doubtful result waits again, in its place.
    cli_json(outputs, "review", "unlabel", third)
    assert [r["pictureId"] for r in whole_queue(outputs, limit=100)] == sorted(
        [third, *queue[3:]], key=queue.index
    )
    cli_json(outputs, "review", "label", third, head.classes[0])
    # Some confident results labelled too (a person may correct any result).
    confident = [i for i in stored.values() if not i.ambiguous][:20]
    for item in confident:
        assert stack.results.set_label(
            item.picture_id, head.classes[1], by="bulk", at="2026-12-04T06:00:00.000Z"
        )

    # A rescore under another head: every result is re-scored, every label stays beside it.
    other = tmp_path / "other.json"
    other.write_bytes(guarded(prototype_head(4), min_margin=0.2))
    activated = cli_json(outputs, "heads", "add", str(other))
    version = activated["head"]["version"]
    started = cli_json(outputs, "heads", "activate", version, "--rescore")
    assert started["rescore"]
    activated_events = [
        e for e in received(stack.client("sqs"), seen) if e["detail-type"] == "Head Activated"
    ]
    assert [e["detail"]["version"] for e in activated_events] == [version]
    validate(activated_events[0])
    watched = [first, second, third, *(i.picture_id for i in confident)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the rescore runs on the local Step Functions
        after = {pid: stack.result(pid) for pid in watched}
        if all(item is not None and item.head_version == version for item in after.values()):
            break
        time.sleep(0.5)
    for pid, item in after.items():
        assert item is not None and item.head_version == version, pid
        assert item.person_label is not None and item.final_label == item.person_label
        assert item.review_queue is None
    assert after[second] is not None and after[second].final_label == "none of these"
    requeued = [r["pictureId"] for r in whole_queue(outputs, limit=100)]
    assert not {first, second, third} & set(requeued)  # labelled: never back in the queue
    unlabelled = stack.result(queue[5])
    assert unlabelled is not None and unlabelled.final_label == unlabelled.top_label

    out = tmp_path / "labels.npz"
    exported = cli_json(outputs, "labels", "export", "--out", str(out))
    assert exported["items"] == 22 and exported["skipped"] == {"none of these": 1}
    with np.load(out, allow_pickle=False) as npz:
        features, labels, model = npz["features"], npz["labels"], str(npz["model_sha256"])
    assert features.shape == (22, 512) and model == stack.upload.function().classifier.embedder.version
    by_id = {first: head.classes[4], third: head.classes[0]} | {
        i.picture_id: head.classes[1] for i in confident
    }
    assert sorted(labels.tolist()) == sorted(by_id.values())
    # The features are the stored embeddings as the head scores them.
    expected = {
        tuple(embedding_codec.head_input(stored[pid].embedding or b"", 512)[0].tolist()) for pid in by_id
    }
    assert {tuple(row.tolist()) for row in features} == expected

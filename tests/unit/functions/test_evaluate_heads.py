"""The evaluation function (moto in-process, resources from template.yaml) fed the events ``sam local invoke
-e`` would take: both heads on every stored embedding, items it must not score counted by reason, parts
merged into a report recorded on the candidate, nothing written to the results, and bad input refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from clip_classifier.aws import AwsClients
from clip_classifier.exceptions import InvalidBatchError, UnknownHeadError, WeightsMismatchError
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.jobs.evaluate import ReportRequest, SegmentRequest
from clip_classifier.registry.records import HeadRecord
from clip_classifier.settings import EvaluateSettings, load_settings
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.head_registry import DynamoHeadRecords, S3HeadFiles
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.wiring import EvaluateFunction, build_evaluate_function
from clip_local.apigw import LambdaContext
from clip_local.handlers import load_function
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from clip_local.template import create_bucket, create_table
from tests.conftest import TABLE, function_env
from tests.helpers import load_event

HEADS_BUCKET, HEADS_TABLE, REPORTS = "heads", "heads-table", "clip-reports-local"
ACTIVE_BYTES = EXAMPLE_WEIGHTS.read_bytes()
CANDIDATE_BYTES = reseeded_head(EXAMPLE_WEIGHTS, seed=1)
ACTIVE, CANDIDATE = Head(parse_weights(ACTIVE_BYTES)), Head(parse_weights(CANDIDATE_BYTES))
MODEL_SHA = json.loads((TINY_MODEL_DIR / "int8" / "manifest.json").read_text())["model_sha256"]


def build(tmp_path: Path, **env: str) -> EvaluateFunction:
    stack = {
        "RESULTS_TABLE": TABLE,
        "EMBEDDER_MANIFEST": str(TINY_MODEL_DIR / "int8" / "manifest.json"),
        "HEADS_BUCKET": HEADS_BUCKET,
        "HEADS_TABLE": HEADS_TABLE,
        "REPORTS_BUCKET": REPORTS,
    }
    values = function_env("EvaluateHeadsFunction", **{**stack, **env})
    return build_evaluate_function(load_settings(EvaluateSettings, values), AwsClients.create())


@pytest.fixture
def function(dynamodb: Any, tmp_path: Path) -> EvaluateFunction:
    s3 = boto3.client("s3")
    create_bucket(s3, HEADS_BUCKET, logical_id="HeadsBucket")
    create_bucket(s3, REPORTS, logical_id="ReportsBucket")
    create_table(dynamodb, HEADS_TABLE, logical_id="HeadsTable")
    files, records = S3HeadFiles(HEADS_BUCKET, s3), DynamoHeadRecords(HEADS_TABLE, dynamodb)
    for raw in (ACTIVE_BYTES, CANDIDATE_BYTES):
        doc = parse_weights(raw)
        files.put_head(doc.content_sha256, raw)
        records.put_new(HeadRecord.of(doc, size=len(raw), by="test", at="2026-12-03T00:00:00Z"))
    return build(tmp_path)


def store(n: int, *, embedder: str = MODEL_SHA, label: str | None = None) -> np.ndarray:
    """An upload's result as the event path writes it (its embedding kept); the features it was scored from."""
    stored, x = embedding_codec.round_trip(np.random.default_rng(n).normal(size=512).astype(np.float32))
    item = ClassificationItem.classified(
        f"img-{n:04d}",
        ResultFields.from_prediction(ACTIVE.predict(x)[0], head_version=ACTIVE.version),
        source=SourceInfo(type="s3", bucket="b", key=f"uploads/{n}.jpg"),
        embedder_version=embedder,
        embedding=stored,
        sequencer=f"{n:020d}",
    ).model_copy(update={"person_label": label})
    assert ResultsStore(TABLE, boto3.client("dynamodb")).put_if_newer(item)
    return x


def store_api_result(n: int) -> None:
    """A scoring API result: the client's features are not kept."""
    _, x = embedding_codec.round_trip(np.random.default_rng(n).normal(size=512).astype(np.float32))
    item = ClassificationItem.classified(
        f"api-{n}",
        ResultFields.from_prediction(ACTIVE.predict(x)[0], head_version=ACTIVE.version),
        source=SourceInfo(type="api"),
    )
    ResultsStore(TABLE, boto3.client("dynamodb")).put_api_results([item])


def run_segments(handler: Any, total: int) -> None:
    event = load_event("evaluate_segment.json")
    for segment in range(total):
        step = {**event, "segment": segment, "totalSegments": total}
        while True:
            step = handler(step, LambdaContext())
            if step["done"]:
                break


def test_the_committed_events_name_the_heads_the_tests_register() -> None:
    for name in ("evaluate_segment.json", "evaluate_report.json"):
        event = load_event(name)
        assert (event["candidate"], event["active"]) == (CANDIDATE.version, ACTIVE.version)


def test_segments_and_report_equal_numpy_and_write_no_result(
    function: EvaluateFunction, dynamodb: Any
) -> None:
    features = [store(i, label=ACTIVE.classes[i % 12] if i < 30 else None) for i in range(60)]
    store(100, embedder="f" * 64)
    store_api_result(101)
    before = dynamodb.scan(TableName=TABLE)["Items"]
    handler = load_function("evaluate_heads").create_handler(function)
    run_segments(handler, 4)
    summary = handler(load_event("evaluate_report.json"), LambdaContext())
    x = np.concatenate(features)
    ta, tc = ACTIVE.forward(x)[1].argmax(axis=1), CANDIDATE.forward(x)[1].argmax(axis=1)
    assert summary["compared"] == 60 and summary["notCompared"] == 2
    assert summary["agreement"] == float((ta == tc).mean()) and summary["flips"] == int((ta != tc).sum())
    labels = np.array([i % 12 for i in range(30)])
    assert summary["labelled"] == 30 and summary["activeAccuracy"] == float((ta[:30] == labels).mean())
    assert dynamodb.scan(TableName=TABLE)["Items"] == before, "an evaluation writes no result"
    record = DynamoHeadRecords(HEADS_TABLE, dynamodb).get(CANDIDATE.version)
    assert record is not None
    ref = record.evaluations["sample-evaluation"]
    assert ref.status == "succeeded" and ref.summary is not None and ref.summary.compared == 60
    report = json.loads(boto3.client("s3").get_object(Bucket=REPORTS, Key=ref.report_key)["Body"].read())
    assert report["notCompared"] == {"api": 1, "embedder_changed": 1}


def test_a_retried_call_rewrites_its_own_part_and_counts_nothing_twice(function: EvaluateFunction) -> None:
    for i in range(30):
        store(i)
    first = SegmentRequest.model_validate({**load_event("evaluate_segment.json"), "totalSegments": 1})
    function.service.page_size = 7
    step, calls = first, 0
    while not step.done:
        step = function.service.segment(step, deadline=time.monotonic() - 1)  # one page per call
        calls += 1
    # The state machine retries a call from its own input after a transient error: the same part again.
    assert function.service.segment(first, deadline=time.monotonic() - 1).part == 1
    summary = function.service.report(ReportRequest.model_validate(load_event("evaluate_report.json")))
    assert summary.compared == 30 and calls == 5  # 30 items, 7 per page: five calls, each its own part


def test_bad_requests_unknown_heads_and_a_head_for_another_model(
    function: EvaluateFunction, tmp_path: Path
) -> None:
    handler = load_function("evaluate_heads").create_handler(function)
    event = load_event("evaluate_segment.json")
    for bad in (
        {},
        {**event, "segment": 4},
        {**event, "runId": "../x"},
        {**event, "candidate": "not-a-version"},
        {**event, "extra": 1},
    ):
        with pytest.raises(InvalidBatchError, match="not an evaluation request"):
            handler(bad, LambdaContext())
    with pytest.raises(UnknownHeadError):
        handler({**event, "candidate": "0" * 64}, LambdaContext())
    wide = tmp_path / "manifest.json"
    wide.write_text(
        (TINY_MODEL_DIR / "int8" / "manifest.json")
        .read_text()
        .replace('"output_dim": 512', '"output_dim": 768')
    )
    other = build(tmp_path, EMBEDDER_MANIFEST=str(wide))
    with pytest.raises(WeightsMismatchError, match="expects 512 features"):
        load_function("evaluate_heads").create_handler(other)(event, LambdaContext())

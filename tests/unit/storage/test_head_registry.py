"""The registry's adapters (DynamoDB table and S3 bucket from template.yaml, on moto) and its in-memory
fakes keep the same contract; then what only the real adapters do (object versions, metadata the
functions' weights cache reads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from clip_classifier.exceptions import UnknownHeadError
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.registry.records import ActivePointer, EvaluationRef, EvaluationSummary, HeadRecord
from clip_classifier.storage.head_registry import ACTIVE_KEY_S3, DynamoHeadRecords, S3HeadFiles, head_key
from clip_classifier.storage.weights_object import weights_cache_for
from clip_local.paths import EXAMPLE_WEIGHTS
from clip_local.template import create_bucket, create_table
from tests.fakes.registry import InMemoryHeadFiles, InMemoryHeadRecords

TABLE = "heads"
BUCKET = "heads-bucket"
RAW = EXAMPLE_WEIGHTS.read_bytes()
DOC = parse_weights(RAW)


@pytest.fixture(params=["memory", "moto"])
def ports(request: pytest.FixtureRequest, aws: None) -> Iterator[tuple[Any, Any]]:
    if request.param == "memory":
        yield InMemoryHeadRecords(), InMemoryHeadFiles()
        return
    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    create_table(dynamodb, TABLE, logical_id="HeadsTable")
    create_bucket(s3, BUCKET, logical_id="HeadsBucket")
    yield DynamoHeadRecords(TABLE, dynamodb), S3HeadFiles(BUCKET, s3)


def record(version: str = DOC.content_sha256) -> HeadRecord:
    return HeadRecord.of(DOC, size=len(RAW), by="alice", at="2026-12-03T00:00:00.000Z").model_copy(
        update={"version": version}
    )


def test_records_put_once_get_and_list(ports: tuple[Any, Any]) -> None:
    records, _ = ports
    assert records.get(DOC.content_sha256) is None and records.all() == []
    assert records.put_new(record())
    assert not records.put_new(record().model_copy(update={"registered_by": "mallory"}))
    stored = records.get(DOC.content_sha256)
    assert stored == record()
    assert stored.provenance["training"]["random_init"] is True
    assert records.all() == [record()]


def test_the_active_pointer_changes_only_from_the_revision_it_was_read_at(ports: tuple[Any, Any]) -> None:
    records, _ = ports
    first = ActivePointer(version="a" * 64, activated_by="x", activated_at="t1", revision=1)
    assert records.active() is None
    assert not records.set_active(first, expected_revision=1)
    assert records.set_active(first, expected_revision=None)
    assert not records.set_active(first, expected_revision=None)  # someone created it first
    second = ActivePointer(
        version="b" * 64, previous=["a" * 64], activated_by="y", activated_at="t2", revision=2
    )
    assert not records.set_active(second, expected_revision=7)
    assert records.set_active(second, expected_revision=1)
    assert records.active() == second
    records.put_new(record())
    assert [r.version for r in records.all()] == [DOC.content_sha256]  # the pointer is not a head


def test_status_and_evaluations_update_in_place(ports: tuple[Any, Any]) -> None:
    records, _ = ports
    records.put_new(record())
    records.set_status(DOC.content_sha256, "active", by="carol", at="t3")
    running = EvaluationRef(run_id="run-1", against="c" * 64, started_at="t4", started_by="dave")
    records.put_evaluation(DOC.content_sha256, running)
    done = running.model_copy(
        update={
            "status": "succeeded",
            "report_key": "k",
            "summary": EvaluationSummary(compared=3, agreement=0.5),
        }
    )
    later = EvaluationRef(run_id="run-2", against="c" * 64, started_at="t5", started_by="dave")
    records.put_evaluation(DOC.content_sha256, done)
    records.put_evaluation(DOC.content_sha256, later)
    stored = records.get(DOC.content_sha256)
    assert stored.status == "active" and stored.activated_by == "carol" and stored.activated_at == "t3"
    assert stored.evaluations == {"run-1": done, "run-2": later}
    assert stored.latest_evaluation == later


def test_files_keep_each_head_once_publish_it_and_record_the_model(ports: tuple[Any, Any]) -> None:
    _, files = ports
    version = DOC.content_sha256
    assert files.served() is None and files.embedder() is None
    with pytest.raises(UnknownHeadError):
        files.get_head(version)
    files.put_head(version, RAW)
    files.put_head(version, b"anything else")  # the name is the content's hash: never replaced
    assert files.get_head(version) == RAW
    files.publish(version, {"head-version": version, "activated-by": "carol"})
    assert files.served() == {"head-version": version, "activated-by": "carol"}
    files.put_embedder(json.dumps({"output_dim": 512, "model_sha256": "e" * 64}).encode())
    assert files.embedder() == ServedEmbedder(output_dim=512, model_sha256="e" * 64)


def test_every_activation_is_an_object_version_the_functions_read_with_its_metadata(
    aws: None, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    create_bucket(s3, BUCKET, logical_id="HeadsBucket")
    files = S3HeadFiles(BUCKET, s3)
    version = DOC.content_sha256
    files.put_head(version, RAW)
    files.publish(version, {"head-version": version, "activated-by": "carol", "registered-by": "alice"})
    cache = weights_cache_for(f"s3://{BUCKET}/{ACTIVE_KEY_S3}", s3=s3, cache_dir=tmp_path, refresh_seconds=0)
    assert cache.get().version == version
    assert cache.origin() == {"head-version": version, "activated-by": "carol", "registered-by": "alice"}
    files.publish(version, {"head-version": version, "activated-by": "dave"})
    assert cache.get().version == version and cache.origin()["activated-by"] == "dave"
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=ACTIVE_KEY_S3)["Versions"]
    assert len(versions) == 2, "the bucket keeps every activation"
    assert s3.get_object(Bucket=BUCKET, Key=head_key(version))["Body"].read() == RAW

"""The rescore function (moto in-process): a new head applied to stored embeddings exactly as the upload
path applies one, items it must not score listed for a backfill, races lost safely, and bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from clip_classifier.exceptions import InvalidBatchError, WeightsMismatchError
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.jobs.rescore import RescoreRequest
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.wiring import RescoreFunction
from clip_local.apigw import LambdaContext
from clip_local.handlers import load_function
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from clip_local.step_functions import LocalStepFunctions
from clip_local.template import create_bucket
from tests.conftest import MODEL_BUCKET, WEIGHTS_KEY, build_rescore
from tests.helpers import load_event

UPLOADS = "clip-uploads-local"
REPORTS = "clip-reports-local"
OLD = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
NEW_BYTES = reseeded_head(EXAMPLE_WEIGHTS, seed=7)
NEW = Head(parse_weights(NEW_BYTES))
MODEL_SHA = json.loads((TINY_MODEL_DIR / "int8" / "manifest.json").read_text())["model_sha256"]


@pytest.fixture
def rescore(dynamodb: Any, weights_uri: str, tmp_path: Path) -> RescoreFunction:
    s3 = boto3.client("s3")
    create_bucket(s3, REPORTS, logical_id="ReportsBucket")
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=NEW_BYTES)  # the head to re-score with
    return build_rescore(tmp_path, WEIGHTS_URI=weights_uri, REPORTS_BUCKET=REPORTS, UPLOAD_BUCKET=UPLOADS)


def uploaded(n: int, *, head: Head = OLD, embedding: bool = True, **changes: Any) -> ClassificationItem:
    """An upload's result as the event path writes it: the head applied to the stored embedding."""
    raw = np.random.default_rng(n).normal(size=512).astype(np.float32)
    stored, features = embedding_codec.round_trip(raw)
    item = ClassificationItem.classified(
        f"img-{n:05d}",
        ResultFields.from_prediction(head.predict(features)[0], head_version=head.version),
        source=SourceInfo(
            type="s3", bucket=UPLOADS, key=f"uploads/img-{n:05d}.jpg", etag=f"etag-{n}", version_id=f"v{n}"
        ),
        embedder_version=MODEL_SHA,
        embedding=stored if embedding else None,
        sequencer=f"{n + 1:040X}",
    )
    return item.model_copy(update=changes)


def probabilities(item: ClassificationItem | None, head: Head) -> np.ndarray:
    assert item is not None and item.probabilities is not None
    return np.asarray([item.probabilities[c] for c in head.classes], dtype=np.float32)


def request(segment: int = 0, total: int = 1, **fields: Any) -> RescoreRequest:
    return RescoreRequest.model_validate(
        {"runId": "run-1", "segment": segment, "totalSegments": total, **fields}
    )


def test_a_new_head_is_applied_to_exactly_the_stored_embedding(rescore: RescoreFunction) -> None:
    store = rescore.service.store
    items = [uploaded(n) for n in range(30)]
    for item in items:
        store.put_if_newer(item)
    progress = rescore.service.run(request())
    assert progress.done and progress.totals == {"rescored": 30}
    for before in items:
        after = store.get(before.picture_id)
        assert after is not None and after.head_version == NEW.version
        assert before.embedding is not None
        expected = NEW.predict(embedding_codec.head_input(before.embedding, 512))[0]
        assert np.array_equal(probabilities(after, NEW), np.asarray(expected.probabilities, np.float32))
        # Everything that is not the result stays: the ordering guard, the embedding, the source.
        assert (after.sequencer, after.embedding, after.source, after.created_at) == (
            before.sequencer, before.embedding, before.source, before.created_at,
        )  # fmt: skip
    # Re-running changes nothing: every item is current.
    assert rescore.service.run(request()).totals == {"current": 30}


def test_what_cannot_be_scored_is_listed_for_a_backfill_as_an_inventory(
    rescore: RescoreFunction, s3: Any
) -> None:
    store = rescore.service.store
    good = uploaded(1)
    assert good.embedding is not None
    store.put_if_newer(good)
    store.put_if_newer(uploaded(2, embedding=False))  # classified before embeddings were kept
    store.put_if_newer(uploaded(3, embedder_version="0" * 64))  # another model's embedding
    store.put_if_newer(
        uploaded(4, embedding=True).model_copy(update={"embedding": good.embedding[:-1] + b"\0"})
    )
    store.put_if_newer(uploaded(5, head=NEW))
    failed = ClassificationItem.failed(
        "img-00006",
        code="image_corrupt",
        message="x",
        source=SourceInfo(type="s3", bucket=UPLOADS, key="uploads/f.jpg"),
        sequencer="1",
    )
    store.put_if_newer(failed)
    store.put_api_results(
        [
            uploaded(7).model_copy(
                update={"source": SourceInfo(type="api"), "sequencer": None, "embedding": None}
            )
        ]
    )

    handler = load_function("rescore_results").create_handler(rescore)
    output = handler(json.loads(request(total=1).model_dump_json(by_alias=True)), LambdaContext())
    assert output["totals"] == {
        "rescored": 1, "no_embedding": 1, "embedder_changed": 1, "corrupt_embedding": 1, "current": 1, "failed": 1, "api": 1,
    }  # fmt: skip
    assert output["done"] is True and output["part"] == 1
    corrupt = store.get("img-00004")
    assert corrupt is not None and corrupt.head_version == OLD.version  # listed, never scored

    manifest = handler({"action": "manifest", "runId": "run-1"}, LambdaContext())
    assert manifest["files"] == 1 and manifest["keys"] == 3
    bucket, key = manifest["manifest"].removeprefix("s3://").split("/", 1)
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert document["fileSchema"] == "Bucket, Key" and document["sourceBucket"] == UPLOADS
    rows = list(
        csv.reader(
            io.StringIO(
                gzip.decompress(
                    s3.get_object(Bucket=REPORTS, Key=document["files"][0]["key"])["Body"].read()
                ).decode()
            )
        )
    )
    assert sorted(rows) == [[UPLOADS, f"uploads/img-0000{n}.jpg"] for n in (2, 3, 4)]
    # The backfill state machine's ItemReader reads it as it reads an S3 Inventory report.
    seen: list[Any] = []
    reader = LocalStepFunctions(s3, {"fn": lambda p: seen.append(p) or {}})
    reader.start(
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemReader": {
                        "Resource": "arn:aws:states:::s3:getObject",
                        "ReaderConfig": {"InputType": "MANIFEST"},
                        "Parameters": {"Bucket": bucket, "Key": key},
                    },
                    "ItemBatcher": {"MaxItemsPerBatch": 25},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                        "StartAt": "T",
                        "States": {
                            "T": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": "fn", "Payload.$": "$"},
                                "End": True,
                            }
                        },
                    },
                    "End": True,
                }
            },
        }
    )
    assert sorted(i["Key"] for i in seen[0]["Items"]) == [f"uploads/img-0000{n}.jpg" for n in (2, 3, 4)]
    assert handler({"action": "manifest", "runId": "empty-run"}, LambdaContext())["manifest"] is None


def test_an_item_rewritten_after_the_scan_is_never_overwritten(rescore: RescoreFunction) -> None:
    store = rescore.service.store
    read = uploaded(1)
    store.put_if_newer(read)
    # A newer upload of the same key lands between the scan and the write (still under the old head, so
    # only the version check stands between them).
    newer = uploaded(1).model_copy(
        update={
            "source": SourceInfo(
                type="s3", bucket=UPLOADS, key="uploads/img-00001.jpg", etag="etag-new", version_id="v-new"
            ),
            "sequencer": f"{99:040X}",
        }
    )
    store.put_if_newer(newer)
    head = rescore.service.weights.get()
    assert rescore.service.rescore(read, head) == "superseded"
    kept = store.get(read.picture_id)
    assert kept is not None and (kept.source, kept.sequencer, kept.head_version) == (
        newer.source, newer.sequencer, newer.head_version,
    )  # fmt: skip
    # ...and a deletion marker is never turned back into a result.
    marker = ClassificationItem(
        picture_id="img-00002", status="deleted", source=read.source, sequencer=f"{100:040X}"
    )
    store.put_if_newer(marker)
    assert rescore.service.rescore(uploaded(2), head) == "superseded"
    stored = store.get("img-00002")
    assert stored is not None and stored.status == "deleted"


def test_segments_continue_where_a_call_stopped(rescore: RescoreFunction) -> None:
    for n in range(40):
        rescore.service.store.put_if_newer(uploaded(n))
    rescore.service.page_size = 7
    totals: dict[str, int] = {}
    calls = 0
    for segment in range(3):
        step = request(segment, 3)
        while True:
            calls += 1
            progress = rescore.service.run(step, deadline=time.monotonic() - 1)  # one page per call
            if progress.done:
                break
            step = progress
        for status, count in progress.totals.items():
            totals[status] = totals.get(status, 0) + count
    assert totals == {"rescored": 40} and calls > 3  # more than one call per segment: each stopped early


def test_bad_requests_and_a_head_for_another_embedder(
    rescore: RescoreFunction, weights_uri: str, tmp_path: Path, s3: Any
) -> None:
    handler = load_function("rescore_results").create_handler(rescore)
    assert handler(load_event("rescore_segment.json"), LambdaContext())["done"] is True
    assert handler(load_event("rescore_manifest.json"), LambdaContext())["files"] == 0
    for bad in (
        {},
        {"runId": "r", "segment": 4, "totalSegments": 4},
        {"runId": "../etc", "segment": 0, "totalSegments": 1},
        {"runId": "r", "segment": 0, "totalSegments": 1, "extra": 1},
    ):
        with pytest.raises(InvalidBatchError, match="not a rescore request"):
            handler(bad, LambdaContext())
    wide = tmp_path / "manifest.json"
    text = (TINY_MODEL_DIR / "int8" / "manifest.json").read_text()
    assert '"output_dim": 512' in text
    wide.write_text(text.replace('"output_dim": 512', '"output_dim": 768'))
    other = build_rescore(
        tmp_path / "l14",
        WEIGHTS_URI=weights_uri,
        REPORTS_BUCKET=REPORTS,
        UPLOAD_BUCKET=UPLOADS,
        EMBEDDER_MANIFEST=str(wide),
    )
    with pytest.raises(
        WeightsMismatchError, match="expects 512 features but the embedder this function serves"
    ):
        other.service.run(request())


def test_the_rescore_logs_hold_no_embedding(
    rescore: RescoreFunction, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import base64

    item = uploaded(11)
    assert item.embedding is not None
    rescore.service.store.put_if_newer(item)
    module = load_function("rescore_results")
    module.logger.setLevel("DEBUG")
    try:
        capfd.readouterr()
        module.create_handler(rescore)(json.loads(request().model_dump_json(by_alias=True)), LambdaContext())
        records = [r for r in caplog.records if r.name == "clip-classifier"]
        out = "".join(capfd.readouterr()) + " ".join(str(r.__dict__) for r in records)
    finally:
        module.logger.setLevel("INFO")
    assert any(r.getMessage() == "segment page(s) scored" for r in records)
    for encoded in (base64.b64encode(item.embedding[:24]).decode(), item.embedding[:24].hex()):
        assert encoded not in out
    unit, _ = embedding_codec.decode(item.embedding, 512)
    for value in unit[:16]:
        assert f"{value:.5f}" not in out


def test_the_handler_takes_its_own_output_back_until_the_segment_is_done(rescore: RescoreFunction) -> None:
    """The state machine passes each call's whole output (``done`` included) back in: the loop must accept
    it, however many calls a segment takes."""
    for n in range(12):
        rescore.service.store.put_if_newer(uploaded(n))
    rescore.service.page_size = 5
    handler = load_function("rescore_results").create_handler(rescore)

    class Hurried(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 0  # the deadline has passed after the first page: one page per call

    payload: dict[str, Any] = {"runId": "run-1", "segment": 0, "totalSegments": 1}
    calls = 0
    while True:
        payload = json.loads(json.dumps(handler(payload, Hurried())))
        calls += 1
        if payload["done"]:
            break
    assert calls == 3 and payload["totals"] == {"rescored": 12}


def test_a_damaged_item_is_counted_and_named_and_its_segment_goes_on(rescore: RescoreFunction) -> None:
    for n in range(3):
        rescore.service.store.put_if_newer(uploaded(n))
    table = rescore.service.store
    table.client.put_item(  # type: ignore[attr-defined]
        TableName=table.table_name,  # type: ignore[attr-defined]
        Item={
            "pictureId": {"S": "damaged"},
            "status": {"S": "half-written"},
            "source": {
                "M": {"type": {"S": "s3"}, "bucket": {"S": UPLOADS}, "key": {"S": "uploads/damaged.jpg"}}
            },
        },
    )
    progress = rescore.service.run(request())
    assert progress.done and progress.totals == {"rescored": 3, "unreadable": 1}
    assert progress.unreadable == ["damaged"]

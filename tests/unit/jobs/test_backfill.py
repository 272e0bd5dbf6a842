"""The backfill's batch function (moto in-process, the real tiny ONNX model): per-key outcomes, the ordering
rule against event-path, API and other backfill results, skips without downloads, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest

from clip_classifier.exceptions import InvalidBatchError, TransientBatchError
from clip_classifier.jobs.backfill import BackfillBatch
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.wiring import BackfillFunction
from clip_local.apigw import LambdaContext
from clip_local.handlers import load_function
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT
from clip_local.template import create_bucket
from tests.conftest import MODEL_BUCKET, WEIGHTS_KEY, build_backfill
from tests.helpers import FaultyClient, client_error, load_event

BUCKET = "clip-uploads-local"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
JPEG = (FIXTURES / "landscape_rgb.jpg").read_bytes()
PNG = (FIXTURES / "small_rgb.png").read_bytes()


def later() -> str:
    """A run start after every object of the test was written."""
    return (
        (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@pytest.fixture
def s3_bucket(dynamodb: Any, weights_uri: str) -> Any:
    s3 = boto3.client("s3")
    create_bucket(s3, BUCKET)
    return s3


@pytest.fixture
def backfill(s3_bucket: Any, weights_uri: str, tmp_path: Path) -> BackfillFunction:
    return build_backfill(tmp_path, WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET)


def batch(*keys: str, source: str = "listing", started_at: str | None = None, **extra: Any) -> BackfillBatch:
    items = [{"Key": key, **extra} for key in keys]
    return BackfillBatch.model_validate(
        {
            "Items": items,
            "BatchInput": {"source": source, "bucket": BUCKET, "startedAt": started_at or later()},
        }
    )


def outcomes(result: Any) -> dict[str, tuple[str, str | None]]:
    return {o.key: (o.outcome, o.code) for o in result.items}


def item(backfill: BackfillFunction, key: str) -> ClassificationItem | None:
    return backfill.service.store.get(picture_id_for_key(key, "uploads/"))


def test_listed_keys_are_classified_with_embeddings_and_a_second_run_downloads_nothing(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/a.jpg", Body=JPEG)
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/b.png", Body=PNG)
    first = FaultyClient(s3_bucket)
    backfill.service.source.s3 = first  # type: ignore[assignment]
    result = backfill.service.run(batch("uploads/a.jpg", "uploads/b.png"))
    assert result.counts == {"classified": 2}
    # Per key: one HEAD for the current version (the listing has no version ids), one GET pinned to it.
    assert first.calls == {"head_object": 2, "get_object": 2}
    stored = item(backfill, "uploads/a.jpg")
    assert stored is not None and stored.status == "classified" and stored.sequencer is None
    assert stored.embedding is not None and stored.source.version_id and stored.source.last_modified

    reads = FaultyClient(s3_bucket)
    backfill.service.source.s3 = reads  # type: ignore[assignment]
    again = backfill.service.run(batch("uploads/a.jpg", "uploads/b.png"))
    assert outcomes(again) == {
        "uploads/a.jpg": ("skipped", "current"),
        "uploads/b.png": ("skipped", "current"),
    }
    assert "get_object" not in reads.calls and reads.calls["head_object"] == 2


def test_a_new_head_or_a_missing_embedding_makes_a_key_current_again(
    s3_bucket: Any, backfill: BackfillFunction, tmp_path: Path, weights_uri: str
) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/a.jpg", Body=JPEG)
    backfill.service.run(batch("uploads/a.jpg"))
    first = item(backfill, "uploads/a.jpg")
    s3_bucket.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=reseeded_head(EXAMPLE_WEIGHTS, seed=3))
    fresh = build_backfill(tmp_path / "b", WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET)
    assert outcomes(fresh.service.run(batch("uploads/a.jpg")))["uploads/a.jpg"] == ("classified", None)
    second = item(backfill, "uploads/a.jpg")
    assert first is not None and second is not None and second.head_version != first.head_version


def test_keys_it_must_not_classify_are_named(s3_bucket: Any, backfill: BackfillFunction) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/notes.txt", Body=b"text")
    s3_bucket.put_object(Bucket=BUCKET, Key="elsewhere/a.jpg", Body=JPEG)
    result = backfill.service.run(batch("uploads/notes.txt", "elsewhere/a.jpg", "uploads/gone.jpg"))
    assert outcomes(result) == {
        "uploads/notes.txt": ("ignored", "suffix"),
        "elsewhere/a.jpg": ("ignored", "outside_prefix"),
        "uploads/gone.jpg": ("missing", "not_found"),
    }
    manifest = BackfillBatch.model_validate(
        {
            "Items": [{"Bucket": "another-bucket", "Key": "uploads/a.jpg"}],
            "BatchInput": {"source": "manifest", "bucket": BUCKET, "startedAt": later()},
        }
    )
    assert outcomes(backfill.service.run(manifest)) == {"uploads/a.jpg": ("ignored", "other_bucket")}
    assert backfill.service.store.get("notes.txt") is None


def test_inventory_keys_are_url_decoded(s3_bucket: Any, backfill: BackfillFunction) -> None:
    key = "uploads/holiday 2026/été+1.jpg"
    s3_bucket.put_object(Bucket=BUCKET, Key=key, Body=JPEG)
    result = backfill.service.run(batch(quote_plus(key, safe="/"), source="manifest", Bucket=BUCKET))
    assert outcomes(result) == {key: ("classified", None)}
    stored = item(backfill, key)
    assert stored is not None and stored.source.key == key


def test_a_poison_image_is_a_failed_item_and_the_rest_of_the_batch_is_stored(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/poison.jpg", Body=JPEG[:300])
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/fine.png", Body=PNG)
    result = backfill.service.run(batch("uploads/poison.jpg", "uploads/fine.png"))
    assert outcomes(result) == {
        "uploads/poison.jpg": ("failed", "image_corrupt"),
        "uploads/fine.png": ("classified", None),
    }
    failed = item(backfill, "uploads/poison.jpg")
    assert failed is not None and failed.status == "failed" and failed.error is not None
    # The same version again: a failure does not depend on the head, so it is not downloaded again.
    assert outcomes(backfill.service.run(batch("uploads/poison.jpg")))["uploads/poison.jpg"] == (
        "skipped",
        "current",
    )


def event_item(
    key: str, version: str | None, *, status: str = "classified", embedding: bool = False
) -> ClassificationItem:
    return ClassificationItem.model_validate(
        {
            "pictureId": picture_id_for_key(key, "uploads/"),
            "status": status,
            "source": {"type": "s3", "bucket": BUCKET, "key": key, "versionId": version, "etag": "e"},
            "sequencer": "0" * 30 + "ABCDEF0123",
            "createdAt": "2026-01-01T00:00:00.000Z",
            **({"embedding": b"x"} if embedding else {}),
        }
    )


def test_items_an_s3_event_wrote_are_never_replaced_except_their_own_version_in_place(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    put = s3_bucket.put_object(Bucket=BUCKET, Key="uploads/a.jpg", Body=JPEG)
    store = backfill.service.store
    for state, expected in (
        (event_item("uploads/a.jpg", "some-other-version"), ("skipped", "event_owned")),
        (event_item("uploads/a.jpg", put["VersionId"], status="deleted"), ("skipped", "event_owned")),
        (event_item("uploads/a.jpg", put["VersionId"], status="failed"), ("skipped", "event_owned")),
    ):
        store.put_if_newer(state.model_copy(update={"sequencer": utc_now_sequencer()}))
        before = store.get(state.picture_id)
        assert outcomes(backfill.service.run(batch("uploads/a.jpg")))["uploads/a.jpg"] == expected
        assert store.get(state.picture_id) == before

    # The event's own version, classified before embeddings were kept: refreshed, keeping its sequencer.
    head = s3_bucket.head_object(Bucket=BUCKET, Key="uploads/a.jpg")
    own = event_item("uploads/a.jpg", put["VersionId"]).model_copy(
        update={
            "sequencer": utc_now_sequencer(),
            "source": SourceInfo(
                type="s3",
                bucket=BUCKET,
                key="uploads/a.jpg",
                version_id=put["VersionId"],
                etag=head["ETag"].strip('"'),
            ),
        }
    )
    store.put_if_newer(own)
    assert outcomes(backfill.service.run(batch("uploads/a.jpg")))["uploads/a.jpg"] == ("classified", None)
    refreshed = store.get(own.picture_id)
    assert refreshed is not None and refreshed.embedding is not None and refreshed.sequencer == own.sequencer
    assert refreshed.created_at == own.created_at and refreshed.status == "classified"


_sequencers = iter(range(1, 1_000_000))


def utc_now_sequencer() -> str:
    """Increasing sequencers, as S3 gives later events of a key."""
    return f"{0x10000 + next(_sequencers):040X}"


def test_write_rules_between_backfill_event_and_api_results(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    store = backfill.service.store

    def backfilled(modified: str, version: str) -> ClassificationItem:
        return ClassificationItem.model_validate(
            {
                "pictureId": "p1",
                "status": "failed",
                "error": {"code": "image_corrupt", "message": "x"},
                "source": {
                    "type": "s3",
                    "bucket": BUCKET,
                    "key": "uploads/p1",
                    "versionId": version,
                    "lastModified": modified,
                },
            }
        )

    api = ClassificationItem.model_validate(
        {"pictureId": "p1", "status": "deleted", "source": {"type": "api"}}
    )
    store.put_api_results([api])
    assert store.put_backfill(backfilled("2026-06-01T00:00:00.000Z", "v2"))  # replaces an API result
    assert not store.put_backfill(backfilled("2026-05-01T00:00:00.000Z", "v1"))  # an older version loses
    assert store.put_backfill(backfilled("2026-06-01T00:00:00.000Z", "v2"))  # the same version again
    with pytest.raises(Exception, match="belongs to an uploaded image"):
        store.put_api_results([api])  # a backfilled id is an upload's: the API cannot take it
    # An S3 event's write wins over a backfill result, and from then on no backfill replaces it.
    event = event_item("uploads/p1", "v3").model_copy(
        update={"picture_id": "p1", "sequencer": utc_now_sequencer()}
    )
    assert store.put_if_newer(event)
    assert not store.put_backfill(backfilled("2026-12-01T00:00:00.000Z", "v4"))
    # A refresh in place only while the event's sequencer is still the item's.
    stale = backfilled("2026-12-01T00:00:00.000Z", "v3").model_copy(update={"sequencer": "0" * 40})
    assert not store.put_backfill(stale)


def test_objects_written_after_the_run_started_are_left_to_their_events(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/new.jpg", Body=JPEG)
    result = backfill.service.run(batch("uploads/new.jpg", started_at="2020-01-01T00:00:00.000Z"))
    assert outcomes(result) == {"uploads/new.jpg": ("skipped", "after_start")}
    assert item(backfill, "uploads/new.jpg") is None


def test_a_transient_error_stores_the_other_keys_then_retries_the_batch(
    s3_bucket: Any, backfill: BackfillFunction
) -> None:
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/a.jpg", Body=JPEG)
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/b.png", Body=PNG)
    backfill.service.source.s3 = FaultyClient(  # type: ignore[assignment]
        s3_bucket, head_object=[client_error("SlowDown", 503, "HeadObject")]
    )
    handler = load_function("backfill_batch").create_handler(backfill)
    event = json.loads(batch("uploads/a.jpg", "uploads/b.png").model_dump_json(by_alias=True))
    with pytest.raises(TransientBatchError, match="source_unavailable"):
        handler(event, LambdaContext())
    assert item(backfill, "uploads/a.jpg") is None and item(backfill, "uploads/b.png") is not None
    # The state machine's retry: the stored key is skipped, the other one done.
    assert handler(event, LambdaContext())["counts"] == {"classified": 1, "skipped": 1}


def test_the_committed_event_file_and_bad_batches(s3_bucket: Any, backfill: BackfillFunction) -> None:
    handler = load_function("backfill_batch").create_handler(backfill)
    event = load_event("backfill_batch.json")
    s3_bucket.put_object(Bucket=BUCKET, Key="uploads/sample photo.jpg", Body=JPEG)
    event["BatchInput"]["startedAt"] = later()
    result = handler(event, LambdaContext())
    assert result["counts"] == {"classified": 1, "ignored": 1}
    assert {i["key"]: i["outcome"] for i in result["items"]} == {
        "uploads/sample photo.jpg": "classified",
        "uploads/notes.txt": "ignored",
    }
    for bad in (
        {},
        {"Items": [], "BatchInput": event["BatchInput"]},
        {**event, "BatchInput": {"source": "listing"}},
    ):
        with pytest.raises(InvalidBatchError, match="not a backfill batch"):
            handler(bad, LambdaContext())


def test_the_batch_functions_logs_hold_no_embedding_or_image_bytes(
    s3_bucket: Any,
    backfill: BackfillFunction,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import base64

    module = load_function("backfill_batch")
    module.logger.setLevel("DEBUG")
    try:
        s3_bucket.put_object(Bucket=BUCKET, Key="uploads/a.jpg", Body=JPEG)
        capfd.readouterr()
        event = json.loads(batch("uploads/a.jpg").model_dump_json(by_alias=True))
        assert module.create_handler(backfill)(event, LambdaContext())["counts"] == {"classified": 1}
        records = [r for r in caplog.records if r.name == "clip-classifier"]
        # Powertools' handler keeps the stdout it found at import; the records hold what it writes.
        out = "".join(capfd.readouterr()) + " ".join(str(r.__dict__) for r in records)
    finally:
        module.logger.setLevel("INFO")
    assert any(r.getMessage() == "batch processed" for r in records)  # the logs were captured
    stored = item(backfill, "uploads/a.jpg")
    assert stored is not None and stored.embedding is not None
    for encoded in (base64.b64encode(stored.embedding[:24]).decode(), stored.embedding[:24].hex()):
        assert encoded not in out
    assert base64.b64encode(JPEG[400:430]).decode()[:24] not in out and JPEG[400:430].hex()[:24] not in out

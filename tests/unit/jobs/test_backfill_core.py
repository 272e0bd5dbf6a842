"""The backfill job's core flow on fakes: its ordering rule against event, API and backfill results, skips
without a download, and transient failures that still store the rest of the batch."""

from __future__ import annotations

import pytest

from clip_classifier.exceptions import TransientSourceError
from clip_classifier.ingest.s3_event import ObjectEvent
from clip_classifier.jobs.backfill import BackfillBatch, BackfillService
from clip_classifier.jobs.upload import UploadClassifier
from clip_local.paths import REPO_ROOT
from tests.fakes.objects import InMemoryObjectSource
from tests.fakes.results import InMemoryResultStore
from tests.unit.jobs.conftest import BUCKET

JPEG = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
LATER = "2027-01-01T00:00:00.000Z"


def batch(*keys: str, started_at: str = LATER) -> BackfillBatch:
    return BackfillBatch.model_validate(
        {
            "Items": [{"Key": key} for key in keys],
            "BatchInput": {"source": "listing", "bucket": BUCKET, "startedAt": started_at},
        }
    )


@pytest.fixture
def backfill(classifier: UploadClassifier) -> BackfillService:
    return BackfillService(classifier)


def test_keys_are_classified_once_and_a_second_run_opens_nothing(
    backfill: BackfillService, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    objects.put(BUCKET, "uploads/a.jpg", JPEG)
    objects.put(BUCKET, "uploads/b.jpg", JPEG)
    assert backfill.run(batch("uploads/a.jpg", "uploads/b.jpg")).counts == {"classified": 2}
    assert results.items["a.jpg"].sequencer is None and results.items["a.jpg"].embedding is not None
    objects.calls.clear()
    again = backfill.run(batch("uploads/a.jpg", "uploads/b.jpg"))
    assert again.counts == {"skipped": 2} and {o.code for o in again.items} == {"current"}
    assert [call for call, _ in objects.calls] == ["current", "current"]  # no object was opened


def test_an_event_result_for_another_version_is_never_replaced(
    backfill: BackfillService, classifier: UploadClassifier, objects: InMemoryObjectSource
) -> None:
    first = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    event = ObjectEvent(
        event_name="ObjectCreated:Put",
        bucket=BUCKET,
        key="uploads/a.jpg",
        version_id=first.version_id,
        etag=first.etag,
        sequencer="10",
    )
    assert classifier.process(event).status == "classified"
    objects.put(BUCKET, "uploads/a.jpg", JPEG + b"\0")  # a new version whose own event is still coming
    result = backfill.run(batch("uploads/a.jpg"))
    assert [(o.outcome, o.code) for o in result.items] == [("skipped", "event_owned")]


def test_versions_after_the_run_started_and_missing_keys(
    backfill: BackfillService, objects: InMemoryObjectSource
) -> None:
    version = objects.put(BUCKET, "uploads/new.jpg", JPEG)
    result = backfill.run(batch("uploads/new.jpg", "uploads/gone.jpg", started_at=version.last_modified))
    assert {o.key: (o.outcome, o.code) for o in result.items} == {
        "uploads/new.jpg": ("skipped", "after_start"),
        "uploads/gone.jpg": ("missing", "not_found"),
    }


def test_a_transient_failure_stores_the_other_keys_then_raises_for_a_retry(
    backfill: BackfillService, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    objects.put(BUCKET, "uploads/a.jpg", JPEG)
    objects.put(BUCKET, "uploads/b.jpg", JPEG)
    objects.open_faults.append(TransientSourceError("reset"))
    with pytest.raises(TransientSourceError):
        backfill.run(batch("uploads/a.jpg", "uploads/b.jpg"))
    assert set(results.items) == {"b.jpg"}
    assert backfill.run(batch("uploads/a.jpg", "uploads/b.jpg")).counts == {"classified": 1, "skipped": 1}


def test_a_key_listed_twice_in_a_batch_is_embedded_once(
    backfill: BackfillService, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    objects.put(BUCKET, "uploads/a.jpg", JPEG)
    result = backfill.run(batch("uploads/a.jpg", "uploads/a.jpg", "uploads/a.jpg"))
    assert result.counts == {"classified": 1} and len(result.items) == 1
    assert [call for call in objects.calls if call[0] == "open"] == [("open", "uploads/a.jpg")]


def test_a_persons_label_survives_a_refresh_of_the_same_image_and_not_a_new_one(
    backfill: BackfillService, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    objects.put(BUCKET, "uploads/a.jpg", JPEG)
    assert backfill.run(batch("uploads/a.jpg")).counts == {"classified": 1}
    assert results.set_label("a.jpg", "pet", by="reviewer", at="2026-12-04T06:00:00.000Z")
    # The same image, refreshed (its embedding was not kept): the new result keeps the person's label.
    results.items["a.jpg"] = results.items["a.jpg"].model_copy(update={"embedding": None})
    assert backfill.run(batch("uploads/a.jpg")).counts == {"classified": 1}
    kept = results.items["a.jpg"]
    assert kept.embedding is not None and (kept.person_label, kept.labeled_by) == ("pet", "reviewer")
    assert kept.review_queue is None
    # A new image under the key: a new result, without the old image's label.
    objects.put(BUCKET, "uploads/a.jpg", JPEG + b"\0")
    assert backfill.run(batch("uploads/a.jpg")).counts == {"classified": 1}
    assert results.items["a.jpg"].person_label is None

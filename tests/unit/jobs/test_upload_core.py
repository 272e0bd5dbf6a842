"""The upload job's core flow on fakes: what is stored for each kind of record, in which order writes win,
and what raises for a retry instead of being recorded."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from clip_classifier.exceptions import InvocationTimeoutError, TransientSourceError, WeightsMismatchError
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.head.weights_cache import LocalWeightsFile, WeightsCache
from clip_classifier.ingest.s3_event import ObjectEvent
from clip_classifier.jobs.upload import UploadClassifier
from clip_classifier.model.embedder import Embedder
from clip_classifier.storage import embedding_codec
from clip_local.paths import REPO_ROOT
from tests.fakes.heads import FixedHead
from tests.fakes.objects import InMemoryObjectSource, StoredVersion
from tests.fakes.results import InMemoryResultStore
from tests.helpers import encode, small_doc
from tests.unit.jobs.conftest import BUCKET

JPEG = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()
PNG = (REPO_ROOT / "tests" / "fixtures" / "images" / "small_rgb.png").read_bytes()


def created(key: str, version: StoredVersion | None, sequencer: str, **changes: object) -> ObjectEvent:
    fields: dict[str, object] = {
        "event_name": "ObjectCreated:Put",
        "bucket": BUCKET,
        "key": key,
        "size": len(version.data) if version else 0,
        "etag": version.etag if version else None,
        "version_id": version.version_id if version else None,
        "sequencer": sequencer,
    }
    return ObjectEvent.model_validate({**fields, **changes})


def test_an_upload_is_classified_and_its_stored_embedding_reproduces_the_result(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore, head: FixedHead
) -> None:
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    outcome = classifier.process(created("uploads/a.jpg", version, "10"))
    assert outcome.status == "classified" and outcome.picture_id == "a.jpg"
    item = results.items["a.jpg"]
    assert item.status == "classified" and item.embedding is not None
    assert item.source.version_id == version.version_id and item.source.last_modified == version.last_modified
    again = head.head.predict(embedding_codec.head_input(item.embedding, 512))[0]
    assert np.array_equal(np.float32(again.probabilities), np.float32(list(item.probabilities.values())))  # type: ignore[union-attr]
    assert set(outcome.timings_ms) == {"download", "decode", "embed", "head", "store"}


def test_duplicates_and_older_events_are_absorbed(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    first = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    second = objects.put(BUCKET, "uploads/a.jpg", PNG)
    assert classifier.process(created("uploads/a.jpg", second, "20")).status == "classified"
    assert classifier.process(created("uploads/a.jpg", second, "20")).status == "duplicate"
    assert classifier.process(created("uploads/a.jpg", first, "1F")).status == "duplicate"
    assert results.items["a.jpg"].source.version_id == second.version_id


def test_a_deletion_wins_over_a_late_create_and_a_removed_version_shows_the_current_one(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    objects.delete(BUCKET, "uploads/a.jpg")
    removed = ObjectEvent(
        event_name="ObjectRemoved:DeleteMarkerCreated", bucket=BUCKET, key="uploads/a.jpg", sequencer="30"
    )
    assert classifier.process(removed).status == "deleted"
    assert classifier.process(created("uploads/a.jpg", version, "20")).status == "duplicate"
    assert results.items["a.jpg"].status == "deleted"
    # The marker is removed for good: the object version under it is the picture again.
    objects.objects[(BUCKET, "uploads/a.jpg")].pop()
    forever = ObjectEvent(
        event_name="ObjectRemoved:Delete",
        bucket=BUCKET,
        key="uploads/a.jpg",
        version_id="marker",
        sequencer="40",
    )
    assert classifier.process(forever).status == "classified"
    assert results.items["a.jpg"].status == "classified"


def test_a_broken_image_is_a_failed_item_not_an_error(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    version = objects.put(BUCKET, "uploads/broken.jpg", JPEG[:300])
    outcome = classifier.process(created("uploads/broken.jpg", version, "10"))
    assert outcome.status == "failed" and outcome.code == "image_corrupt"
    item = results.items["broken.jpg"]
    assert item.status == "failed" and item.error is not None and item.error.code == "image_corrupt"


def test_an_object_over_the_limit_fails_without_being_decoded(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    objects.max_bytes = 1000
    version = objects.put(BUCKET, "uploads/big.jpg", JPEG)
    assert classifier.process(created("uploads/big.jpg", version, "10")).code == "image_too_large"


def test_a_changed_or_vanished_object_is_left_to_its_newer_event(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    old = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    objects.put(BUCKET, "uploads/a.jpg", PNG)
    unversioned = created("uploads/a.jpg", old, "10", version_id=None)
    assert classifier.process(unversioned).status == "superseded"
    gone = created("uploads/a.jpg", old, "11", version_id="v-deleted-since")
    assert classifier.process(gone).status == "superseded"
    assert results.items == {}


def test_a_transient_read_raises_for_a_retry_and_stores_nothing(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    objects.open_faults.append(TransientSourceError("s3://b/k is temporarily unavailable"))
    with pytest.raises(TransientSourceError):
        classifier.process(created("uploads/a.jpg", version, "10"))
    assert results.items == {}
    assert classifier.process(created("uploads/a.jpg", version, "10")).status == "classified"


def test_a_record_past_the_deadline_is_retried_not_failed(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    with pytest.raises(InvocationTimeoutError) as info:
        classifier.process(created("uploads/a.jpg", version, "10"), time.monotonic() - 1)
    assert info.value.transient and results.items == {} and objects.calls == []


def test_other_buckets_and_keys_outside_the_prefix_are_ignored(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    elsewhere = created("uploads/a.jpg", version, "10", bucket="another-bucket")
    assert (classifier.process(elsewhere).status, classifier.process(elsewhere).code) == (
        "ignored",
        "other_bucket",
    )
    assert classifier.process(created("private/a.jpg", version, "11")).status == "ignored"
    assert results.items == {} and objects.calls == []


def test_a_head_for_another_embedder_is_refused_where_it_is_loaded(
    classifier: UploadClassifier, objects: InMemoryObjectSource, embedder: Embedder, tmp_path: Path
) -> None:
    """The upload job serves what its head provider gives; the provider the function builds (a weights
    cache checked against this embedder) refuses a head of another dimension or another model."""
    served = ServedEmbedder(output_dim=embedder.output_dim, model_sha256=embedder.version)
    narrow = tmp_path / "narrow.json"
    narrow.write_bytes(encode(small_doc(input_dim=4)))
    classifier.weights = WeightsCache(LocalWeightsFile(narrow), cache_dir=tmp_path, served=served)
    version = objects.put(BUCKET, "uploads/a.jpg", JPEG)
    with pytest.raises(
        WeightsMismatchError, match="expects 4 features but the embedder this function serves"
    ):
        classifier.process(created("uploads/a.jpg", version, "10"))


def test_a_sample_of_confident_results_waits_for_a_person_too(
    classifier: UploadClassifier, objects: InMemoryObjectSource, results: InMemoryResultStore
) -> None:
    """ReviewSampleRate: besides the doubtful results, a stable share of the confident ones enters the
    queue (by pictureId), so people's labels estimate accuracy over all results, not only the hard ones."""
    keys = [f"uploads/s-{i:03d}.jpg" for i in range(200)]
    for index, key in enumerate(keys):
        version = objects.put(BUCKET, key, JPEG)
        assert classifier.process(created(key, version, f"{index + 1:04X}")).status == "classified"
    assert not any(i.review_queue for i in results.items.values())  # no guard, no sample: an empty queue
    classifier.review_sample_rate = 0.1
    for index, key in enumerate(keys):
        version = objects.put(BUCKET, key, JPEG + b"\0")
        assert classifier.process(created(key, version, f"{index + 1001:04X}")).status == "classified"
    queued = {pid for pid, i in results.items.items() if i.review_queue == "open"}
    assert 8 <= len(queued) <= 35  # about 20 of 200
    assert all(results.items[pid].ambiguous is None for pid in queued)  # confident (no guard) results
    # The same pictures every time: the sample is decided by the picture, not by chance.
    from clip_classifier.storage.review_queue import sampled

    assert queued == {pid for pid in results.items if sampled(pid, 0.1)}

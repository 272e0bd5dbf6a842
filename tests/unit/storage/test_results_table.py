from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clip_classifier.exceptions import PictureConflictError, ResultsStoreError, TransientResultsStoreError
from clip_classifier.head.forward import Prediction
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.ingest.s3_event import normalize_sequencer
from clip_classifier.storage.item_codec import serialize, to_decimal
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from tests.conftest import TABLE, scan_count
from tests.helpers import FaultyClient, client_error

CLASSES = ("cat", "dog", "bird")


def prediction(seed: int = 0) -> Prediction:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.01, 0.99, size=3).astype(np.float32)
    probs = (scores / scores.sum()).astype(np.float32)
    return Prediction(CLASSES, tuple(scores.tolist()), tuple(probs.tolist()))


def s3_record(picture_id: str, sequencer: str, seed: int = 0) -> ClassificationItem:
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(prediction(seed), head_version="h" * 64),
        source=SourceInfo(type="s3", bucket="b", key=picture_id, etag=f"e{seed}"),
        sequencer=normalize_sequencer(sequencer),
    )


def test_round_trip_keeps_every_field(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    record = ClassificationItem.classified(
        "pic-1",
        ResultFields.from_prediction(prediction(), head_version="a" * 64),
        source=SourceInfo(type="api"),
    )
    store.put_api_results([record])
    got = store.get("pic-1")
    assert got is not None
    assert got.status == "classified" and got.classes == list(CLASSES)
    assert got.probabilities is not None
    for label, value in record.probabilities.items():  # type: ignore[union-attr]
        assert got.probabilities[label] == pytest.approx(value, abs=1e-7)
    assert abs(sum(got.probabilities.values()) - 1) <= 1e-6
    assert got.top_label == record.top_label and got.head_version == "a" * 64


def test_get_missing_is_none(dynamodb: Any) -> None:
    assert ResultsStore(TABLE, dynamodb).get("absent") is None


def test_failed_record_keeps_the_reason(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    store.put_if_newer(
        ClassificationItem.failed(
            "x",
            code="image_corrupt",
            message="truncated JPEG",
            source=SourceInfo(type="s3"),
            sequencer=normalize_sequencer("1"),
        )
    )
    got = store.get("x")
    assert got is not None and got.status == "failed"
    assert (
        got.error is not None and got.error.code == "image_corrupt" and got.error.message == "truncated JPEG"
    )


def test_newer_sequencer_wins_and_older_or_duplicate_is_absorbed(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    assert store.put_if_newer(s3_record("k", "00AA", seed=1))
    assert store.put_if_newer(s3_record("k", "00BB", seed=2))
    assert not store.put_if_newer(s3_record("k", "00AA", seed=3))  # out of order
    assert not store.put_if_newer(s3_record("k", "00BB", seed=4))  # duplicate
    got = store.get("k")
    assert got is not None and got.source.etag == "e2"


def test_sequencers_of_different_length_compare_as_numbers() -> None:
    assert normalize_sequencer("FF") < normalize_sequencer("100")
    assert normalize_sequencer("0A") == normalize_sequencer("a")
    with pytest.raises(ValueError):
        normalize_sequencer("not-hex")


def test_deletion_marker_has_a_ttl_and_blocks_late_creates(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    store.put_if_newer(s3_record("k", "10"))
    marker = ClassificationItem(
        picture_id="k",
        status="deleted",
        source=SourceInfo(type="s3", key="k"),
        sequencer=normalize_sequencer("20"),
    )
    assert store.put_if_newer(marker)
    assert not store.put_if_newer(s3_record("k", "15"))
    got = store.get("k")
    assert got is not None and got.status == "deleted" and got.expires_at is not None


def api_record(picture_id: str, seed: int = 0) -> ClassificationItem:
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(prediction(seed), head_version="a" * 64),
        source=SourceInfo(type="api"),
    )


def test_an_api_batch_of_100_is_one_transaction(dynamodb: Any) -> None:
    client = FaultyClient(dynamodb)
    ResultsStore(TABLE, client).put_api_results([api_record(f"p{i}", i) for i in range(100)])  # type: ignore[arg-type]
    assert scan_count(dynamodb) == 100 and client.calls == {"transact_write_items": 1}
    with pytest.raises(ValueError, match="at most 100"):
        ResultsStore(TABLE, dynamodb).put_api_results([api_record(f"q{i}") for i in range(101)])


def test_api_results_never_replace_what_an_upload_wrote_and_a_refusal_stores_nothing(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    store.put_if_newer(s3_record("uploaded", "10"))
    store.put_api_results([api_record("api-1", 1)])
    store.put_api_results([api_record("api-1", 2)])  # an API result may replace an API result
    with pytest.raises(PictureConflictError, match="'uploaded' belongs to an uploaded image") as info:
        store.put_api_results([api_record("fresh-1"), api_record("uploaded"), api_record("fresh-2")])
    assert info.value.picture_id == "uploaded"
    assert store.get("fresh-1") is None and store.get("fresh-2") is None  # all or nothing
    with pytest.raises(PictureConflictError):
        store.put_api_results([api_record("uploaded")])
    got = store.get("uploaded")
    assert got is not None and got.source.type == "s3" and got.sequencer == normalize_sequencer("10")


def test_a_deleted_image_cannot_come_back_through_the_api(dynamodb: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    marker = ClassificationItem(
        picture_id="gone", status="deleted", source=SourceInfo(type="s3"), sequencer=normalize_sequencer("5")
    )
    assert store.put_if_newer(marker)
    with pytest.raises(PictureConflictError):
        store.put_api_results([api_record("gone")])
    got = store.get("gone")
    assert got is not None and got.status == "deleted"


def test_uploads_own_their_picture_ids_over_api_results(dynamodb: Any) -> None:
    """The documented rule: an upload's result replaces an API result of the same pictureId."""
    store = ResultsStore(TABLE, dynamodb)
    store.put_api_results([api_record("shared")])
    assert store.put_if_newer(s3_record("shared", "3"))
    assert not store.put_if_newer(s3_record("shared", "2"))  # and the sequencer guard holds after it
    got = store.get("shared")
    assert got is not None and got.source.type == "s3"


def test_throttling_is_transient_and_other_errors_are_not(dynamodb: Any) -> None:
    throttled = FaultyClient(dynamodb, put_item=[client_error("ProvisionedThroughputExceededException", 400)])
    with pytest.raises(TransientResultsStoreError):
        ResultsStore(TABLE, throttled).put_if_newer(s3_record("k", "1"))  # type: ignore[arg-type]
    with pytest.raises(ResultsStoreError) as info:
        ResultsStore("no-such-table", dynamodb).put_api_results([api_record("k")])
    assert not info.value.transient


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_every_float32_becomes_an_exact_decimal(value: float) -> None:
    dec = to_decimal(value)
    assert np.float32(float(dec)) == np.float32(value)
    assert isinstance(dec, Decimal)


def test_serialization_never_raises_inexact() -> None:
    tiny = Prediction(CLASSES, (1e-38, 1.0000001, 0.33333334), (1e-45, 0.9999999, 1 / 3))
    item = serialize(
        ClassificationItem.classified(
            "p", ResultFields.from_prediction(tiny, head_version="a" * 64), source=SourceInfo(type="api")
        )
    )
    # Codec 2: one number per class, in the classes' order.
    assert Decimal(item["probabilities"]["L"][CLASSES.index("cat")]["N"]) == Decimal("1e-45")


def test_a_review_page_reads_only_the_page_it_returns(dynamodb: Any) -> None:
    """The queue is an index Query, not a Scan: at any table size a page reads its own items (moto's
    ScannedCount; ``bench`` figures for real capacity would be per page, not per table)."""
    from tests.unit.storage.test_results_contract import doubtful_item, event_item

    store = ResultsStore(TABLE, dynamodb)
    for index in range(600):
        store.put_if_newer(event_item(f"sure-{index:04d}", "1"))
        top = 0.45 + index / 20_000  # margins 0 … 0.03 over the second label's 0.40, rest ≥ 0.12
        store.put_if_newer(doubtful_item(f"doubt-{index:04d}", "1", (top, 0.40)))
    page = store.review_page(limit=20)
    assert len(page.items) == 20 and page.scanned == 20 and page.next_key is not None
    assert [i.picture_id for i in page.items] == [f"doubt-{index:04d}" for index in range(20)]
    # Projected, not the whole item: what a reviewer sees, without the embedding.
    assert page.items[0].top is not None and page.items[0].embedding is None

"""One set of scenarios against the results table on moto and against its in-memory fake
(``tests/fakes/results.py``): the fake the fast core tests use behaves as the DynamoDB adapter does, write
for write, so a test of a job against the fake says something about the job against DynamoDB."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clip_classifier.exceptions import PictureConflictError
from clip_classifier.head.forward import Prediction
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.ingest.s3_event import normalize_sequencer
from clip_classifier.ports import ApiResults, ResultScan, ResultSink, ReviewResults
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from tests.conftest import TABLE
from tests.fakes.results import InMemoryResultStore

CLASSES = ("cat", "dog", "bird")


class Store(ResultSink, ResultScan, ApiResults, ReviewResults):
    """Both implementations, through the ports the jobs and the API see."""

    def get(self, picture_id: str) -> ClassificationItem | None: ...


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return InMemoryResultStore()  # type: ignore[return-value]
    return ResultsStore(TABLE, request.getfixturevalue("dynamodb"))  # type: ignore[return-value]


def fields(seed: int = 0, head: str = "a") -> ResultFields:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.01, 0.99, size=3).astype(np.float32)
    prediction = Prediction(CLASSES, tuple(scores.tolist()), tuple((scores / scores.sum()).tolist()))
    return ResultFields.from_prediction(prediction, head_version=head * 64)


def event_item(picture_id: str, sequencer: str, *, seed: int = 0, version: str = "v1") -> ClassificationItem:
    return ClassificationItem.classified(
        picture_id,
        fields(seed),
        source=SourceInfo(type="s3", bucket="b", key=picture_id, etag=f"e-{version}", version_id=version),
        sequencer=normalize_sequencer(sequencer),
    )


def backfill_item(picture_id: str, modified: str, *, sequencer: str | None = None) -> ClassificationItem:
    return ClassificationItem.classified(
        picture_id,
        fields(1),
        source=SourceInfo(
            type="s3", bucket="b", key=picture_id, etag="e-v1", version_id="v1", last_modified=modified
        ),
        sequencer=sequencer,
    )


def api_item(picture_id: str) -> ClassificationItem:
    return ClassificationItem.classified(picture_id, fields(2), source=SourceInfo(type="api"))


def test_event_writes_keep_the_newest_sequencer(store: Store) -> None:
    assert store.put_if_newer(event_item("p", "20", seed=1))
    assert not store.put_if_newer(event_item("p", "1F", seed=2))  # older
    assert not store.put_if_newer(event_item("p", "20", seed=3))  # the same event again
    assert store.put_if_newer(event_item("p", "0100", seed=4))  # newer (hex, not string, order)
    got = store.get("p")
    assert got is not None and got.sequencer == normalize_sequencer("100")
    marker = ClassificationItem(
        picture_id="p", status="deleted", source=SourceInfo(type="s3"), sequencer=normalize_sequencer("101")
    )
    assert store.put_if_newer(marker)
    deleted = store.get("p")
    assert deleted is not None and deleted.status == "deleted" and deleted.expires_at is not None


MODIFIED = "2026-01-01T00:00:10.000Z"


@pytest.mark.parametrize(
    ("existing", "written"),
    [
        (None, True),
        ("api", True),
        ("event", False),
        ("older_backfill", True),
        ("newer_backfill", False),
    ],
)
def test_the_backfill_ordering_rule(store: Store, existing: str | None, written: bool) -> None:
    if existing == "api":
        store.put_api_results([api_item("p")])
    elif existing == "event":
        store.put_if_newer(event_item("p", "5"))
    elif existing == "older_backfill":
        store.put_backfill(backfill_item("p", "2026-01-01T00:00:09.000Z"))
    elif existing == "newer_backfill":
        store.put_backfill(backfill_item("p", "2026-01-01T00:00:11.000Z"))
    assert store.put_backfill(backfill_item("p", MODIFIED)) is written


@pytest.mark.parametrize(
    ("status", "sequencer", "written"), [("classified", "5", True), ("classified", "6", False)]
)
def test_a_backfill_refreshes_an_event_result_only_while_it_holds_that_event(
    store: Store, status: str, sequencer: str, written: bool
) -> None:
    store.put_if_newer(event_item("p", "5"))
    refresh = backfill_item("p", MODIFIED, sequencer=normalize_sequencer(sequencer))
    assert store.put_backfill(refresh) is written


def test_a_failed_event_result_is_never_refreshed(store: Store) -> None:
    failed = ClassificationItem.failed(
        "p",
        code="image_corrupt",
        message="m",
        source=SourceInfo(type="s3"),
        sequencer=normalize_sequencer("5"),
    )
    store.put_if_newer(failed)
    assert not store.put_backfill(backfill_item("p", MODIFIED, sequencer=normalize_sequencer("5")))


def test_a_rescore_updates_only_the_same_version_under_another_head(store: Store) -> None:
    store.put_if_newer(event_item("p", "5", version="v1"))
    previous = store.get("p")
    assert previous is not None
    new = fields(7, head="b").model_copy(update={"ambiguous": None})
    assert store.update_result(previous, new, updated_at="2026-02-01T00:00:00.000Z")
    got = store.get("p")
    assert got is not None and got.head_version == "b" * 64 and got.top_label == new.top_label
    assert got.sequencer == normalize_sequencer("5") and got.source.version_id == "v1"
    assert not store.update_result(previous, new, updated_at="x")  # already under that head
    store.put_if_newer(event_item("p", "6", version="v2"))  # a newer upload won meanwhile
    assert not store.update_result(previous, fields(8, head="c"), updated_at="x")


def test_api_results_never_replace_an_upload_and_a_batch_is_all_or_nothing(store: Store) -> None:
    store.put_api_results([api_item("a")])
    store.put_api_results([api_item("a")])  # an API result replaces an API result
    store.put_if_newer(event_item("u", "1"))
    with pytest.raises(PictureConflictError) as info:
        store.put_api_results([api_item("new-1"), api_item("u"), api_item("new-2")])
    assert info.value.picture_id == "u"
    assert store.get("new-1") is None and store.get("new-2") is None
    assert store.get_many(["a", "u", "absent", "a"]).keys() == {"a", "u"}


@pytest.mark.parametrize("segments", [1, 3])
def test_a_parallel_scan_sees_every_item_once(store: Store, segments: int) -> None:
    ids = {f"p{i:02d}" for i in range(23)}
    for picture_id in ids:
        store.put_api_results([api_item(picture_id)])
    seen: list[str] = []
    for segment in range(segments):
        start: dict[str, Any] | None = None
        while True:
            page = store.scan_segment(segment, segments, start_key=start, limit=5)
            start = page.next_key
            assert len(page.items) <= 5 and page.unreadable == []
            seen += [item.picture_id for item in page.items]
            if start is None:
                break
    assert sorted(seen) == sorted(ids)


def test_both_implementations_run(store: Store, request: pytest.FixtureRequest) -> None:
    """The parametrisation is real: one run is the DynamoDB adapter, the other the fake."""
    expected = {"dynamodb": ResultsStore, "memory": InMemoryResultStore}[
        request.node.callspec.params["store"]
    ]
    assert type(store) is expected


def doubtful_item(
    picture_id: str, sequencer: str, top: tuple[float, float], *, head: str = "a"
) -> ClassificationItem:
    """An ambiguous upload result whose top-1/top-2 probabilities are ``top``."""
    rest = 1.0 - sum(top)
    prediction = Prediction(CLASSES, (0.5, 0.4, 0.1), (top[0], top[1], rest), ambiguous=True)
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(prediction, head_version=head * 64),
        source=SourceInfo(type="s3", bucket="b", key=picture_id, etag="e-v1", version_id="v1"),
        sequencer=normalize_sequencer(sequencer),
    )


def queue(store: Store, limit: int = 100) -> list[str]:
    ids: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        page = store.review_page(limit=limit, start_key=start)
        ids += [i.picture_id for i in page.items]
        if page.next_key is None:
            return ids
        start = page.next_key


def test_the_queue_holds_the_doubtful_results_most_uncertain_first_page_by_page(store: Store) -> None:
    store.put_if_newer(doubtful_item("wide", "1", (0.50, 0.20)))
    store.put_if_newer(doubtful_item("close", "1", (0.40, 0.38)))
    store.put_if_newer(doubtful_item("middle", "1", (0.45, 0.35)))
    store.put_if_newer(event_item("confident", "1"))  # no guard: not ambiguous, not queued
    assert queue(store) == ["close", "middle", "wide"]
    assert queue(store, limit=1) == ["close", "middle", "wide"]  # the cursor walks the pages
    first = store.review_page(limit=2)
    assert [i.picture_id for i in first.items] == ["close", "middle"] and first.next_key is not None
    item = first.items[0]
    assert item.top is not None and [t.label for t in item.top][:2] == ["cat", "dog"]
    assert item.review_margin == pytest.approx(0.02, abs=1e-6)


def test_a_label_takes_the_result_out_of_the_queue_and_withdrawing_it_puts_it_back(store: Store) -> None:
    store.put_if_newer(doubtful_item("p", "1", (0.40, 0.38)))
    written = store.set_label("p", "dog", by="reviewer-1", at="2026-12-04T06:00:00.000Z")
    labelled = store.get("p")
    assert labelled is not None and labelled.person_label == "dog" and labelled.labeled_by == "reviewer-1"
    assert written == labelled  # the write returns the item as stored: no second read needed
    assert labelled.top_label == "cat" and labelled.final_label == "dog"  # both kept, side by side
    assert queue(store) == []
    assert store.set_label("unknown", "dog", by="r", at="2026-12-04T06:00:00.000Z") is None
    assert store.clear_label(labelled)
    withdrawn = store.get("p")
    assert withdrawn is not None and withdrawn.person_label is None and withdrawn.final_label == "cat"
    assert queue(store) == ["p"]
    assert not store.clear_label(labelled)  # already withdrawn: the label read is no longer there


def test_racing_reviewers_leave_one_consistent_item(store: Store) -> None:
    store.put_if_newer(doubtful_item("p", "1", (0.40, 0.38)))
    assert store.set_label("p", "dog", by="alice", at="2026-12-04T06:00:00.000Z")
    seen_by_alice = store.get("p")
    assert store.set_label("p", "bird", by="bob", at="2026-12-04T06:00:01.000Z")
    assert seen_by_alice is not None and not store.clear_label(seen_by_alice)  # bob's label is not hers
    final = store.get("p")
    assert final is not None
    assert (final.person_label, final.labeled_by, final.labeled_at) == (
        "bird",
        "bob",
        "2026-12-04T06:00:01.000Z",
    )


def test_a_rescore_keeps_the_label_and_moves_the_queue_with_the_new_result(store: Store) -> None:
    store.put_if_newer(doubtful_item("labelled", "1", (0.40, 0.38)))
    store.put_if_newer(doubtful_item("open", "1", (0.40, 0.38)))
    store.set_label("labelled", "dog", by="r", at="2026-12-04T06:00:00.000Z")
    for picture_id in ("labelled", "open"):
        previous = store.get(picture_id)
        assert previous is not None
        # The new head is sure: the open item leaves the queue; the labelled one keeps its label.
        assert store.update_result(previous, fields(5, head="b"), updated_at="2026-12-04T07:00:00.000Z")
    labelled, opened = store.get("labelled"), store.get("open")
    assert labelled is not None and labelled.person_label == "dog" and labelled.head_version == "b" * 64
    assert opened is not None and opened.review_queue is None and queue(store) == []
    # Back to a doubtful head: only the unlabelled item re-enters.
    for picture_id in ("labelled", "open"):
        previous = store.get(picture_id)
        assert previous is not None
        doubtful = doubtful_item(picture_id, "1", (0.41, 0.39), head="c")
        result = ResultFields.model_validate(doubtful.model_dump(include=set(ResultFields.model_fields)))
        assert store.update_result(previous, result, updated_at="2026-12-04T08:00:00.000Z")
    assert queue(store) == ["open"]


def test_a_rescore_that_read_no_label_does_not_overwrite_one_given_meanwhile(store: Store) -> None:
    store.put_if_newer(doubtful_item("p", "1", (0.40, 0.38)))
    read = store.get("p")
    store.set_label("p", "dog", by="r", at="2026-12-04T06:00:00.000Z")
    assert read is not None and not store.update_result(
        read, fields(5, head="b"), updated_at="2026-12-04T07:00:00.000Z"
    )
    after = store.get("p")
    assert after is not None and after.person_label == "dog" and after.review_queue is None


def test_a_new_image_under_the_key_clears_the_label(store: Store) -> None:
    store.put_if_newer(doubtful_item("p", "1", (0.40, 0.38)))
    store.set_label("p", "dog", by="r", at="2026-12-04T06:00:00.000Z")
    assert store.put_if_newer(doubtful_item("p", "2", (0.40, 0.38)))  # a later upload of the key
    fresh = store.get("p")
    assert fresh is not None and fresh.person_label is None and queue(store) == ["p"]


def test_a_rescore_keeps_sampled_confident_results_in_the_queue(store: Store) -> None:
    store.put_if_newer(event_item("sampled", "1"))
    previous = store.get("sampled")
    assert previous is not None and previous.review_queue is None
    assert store.update_result(
        previous, fields(5, head="b"), updated_at="2026-12-04T07:00:00.000Z", review_sample_rate=1.0
    )
    assert queue(store) == ["sampled"]

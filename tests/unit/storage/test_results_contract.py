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
from clip_classifier.ports import ApiResults, ResultScan, ResultSink
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from tests.conftest import TABLE
from tests.fakes.results import InMemoryResultStore

CLASSES = ("cat", "dog", "bird")


class Store(ResultSink, ResultScan, ApiResults):
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

"""The rescore job's core flow on fakes: what is re-scored, listed or left alone, paging to a deadline, and
a newer write between the scan and the update."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.jobs.rescore import RescoreRequest, RescoreService
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.fakes.heads import FixedHead, InMemoryBackfillLists, example_head
from tests.fakes.results import InMemoryResultStore

EMBEDDER = "e" * 64
RNG = np.random.default_rng(0)


def stored(
    picture_id: str, *, head: Head, embedding: bool = True, embedder: str = EMBEDDER
) -> ClassificationItem:
    data, features = embedding_codec.round_trip(RNG.normal(size=512).astype(np.float32))
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(head.predict(features)[0], head_version=head.version),
        source=SourceInfo(type="s3", bucket="b", key=f"uploads/{picture_id}", etag="e1", version_id="v1"),
        embedder_version=embedder,
        embedding=data if embedding else None,
        sequencer="0" * 39 + "1",
    )


@pytest.fixture
def new_head() -> Head:
    return Head(parse_weights(reseeded_head(EXAMPLE_WEIGHTS, seed=7)))


def service(results: InMemoryResultStore, head: Head, lists: InMemoryBackfillLists) -> RescoreService:
    return RescoreService(results, FixedHead(head), lists, embedder_version=EMBEDDER, page_size=4)


def request(**changes: Any) -> RescoreRequest:
    return RescoreRequest.model_validate({"runId": "run-1", "segment": 0, "totalSegments": 1, **changes})


def test_each_kind_of_item_gets_its_status_and_rescored_ones_equal_the_new_head(new_head: Head) -> None:
    old = example_head()
    results, lists = InMemoryResultStore(), InMemoryBackfillLists()
    for item in [
        stored("a", head=old),
        stored("b", head=old),
        stored("current", head=new_head),
        stored("bare", head=old, embedding=False),
        stored("foreign", head=old, embedder="f" * 64),
        ClassificationItem.classified(
            "api",
            ResultFields.from_prediction(
                old.predict(np.ones((1, 512), np.float32))[0], head_version=old.version
            ),
            source=SourceInfo(type="api"),
        ),
    ]:
        results.items[item.picture_id] = item
    progress = service(results, new_head, lists).run(request())
    assert progress.done and progress.totals == {
        "rescored": 2, "current": 1, "no_embedding": 1, "embedder_changed": 1, "api": 1
    }  # fmt: skip
    for picture_id in ("a", "b"):
        item = results.items[picture_id]
        expected = new_head.predict(embedding_codec.head_input(item.embedding or b"", 512))[0]
        assert item.head_version == new_head.version
        assert np.array_equal(
            np.float32(list(item.probabilities.values())), np.float32(expected.probabilities)
        )  # type: ignore[union-attr]
    assert sorted(key for rows in lists.files.values() for _, key in rows) == [
        "uploads/bare",
        "uploads/foreign",
    ]


def test_a_segment_stops_at_its_deadline_and_the_next_call_continues(new_head: Head) -> None:
    old = example_head()
    results, lists = InMemoryResultStore(), InMemoryBackfillLists()
    for i in range(10):
        item = stored(f"p{i}", head=old)
        results.items[item.picture_id] = item
    job = service(results, new_head, lists)
    first = job.run(request(), deadline=time.monotonic() - 1)  # one page, then the deadline has passed
    assert not first.done and first.totals == {"rescored": 4} and first.start_key is not None
    rest = job.run(request(startKey=first.start_key, totals=first.totals))
    assert rest.done and rest.totals == {"rescored": 10}


def test_a_newer_upload_between_scan_and_update_is_never_overwritten(new_head: Head) -> None:
    old = example_head()

    class RacingStore(InMemoryResultStore):
        def scan_segment(self, *args: Any, **kwargs: Any) -> Any:
            page = super().scan_segment(*args, **kwargs)
            newer = self.items["a"].model_copy(
                update={"source": SourceInfo(type="s3", etag="e2", version_id="v2")}
            )
            self.items["a"] = newer  # an upload of a new version lands after the page was read
            return page

    results, lists = RacingStore(), InMemoryBackfillLists()
    results.items["a"] = stored("a", head=old)
    progress = service(results, new_head, lists).run(request())
    assert progress.totals == {"superseded": 1} and results.items["a"].head_version == old.version


def test_an_unreadable_item_is_counted_named_and_listed_never_fatal(new_head: Head) -> None:
    old = example_head()
    results, lists = InMemoryResultStore(), InMemoryBackfillLists()
    for picture_id in ("a", "b", "c"):
        results.items[picture_id] = stored(picture_id, head=old)
    results.unreadable.add("b")
    progress = service(results, new_head, lists).run(request())
    assert progress.done and progress.totals == {"rescored": 2, "unreadable": 1}
    assert progress.unreadable == ["b"]
    assert [key for rows in lists.files.values() for _, key in rows] == ["uploads/b"]

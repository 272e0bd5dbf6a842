"""The reviewers' service on in-memory fakes of its ports (results, head, links, bus): the rules alone,
fast; ``tests/unit/functions/test_review_labels.py`` proves the same through the handler on moto."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from clip_classifier.api.review import ReviewService
from clip_classifier.events.messages import Detail, LabelAdded
from clip_classifier.exceptions import InvalidCursorError, LabelError, ResultNotFoundError
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.review_queue import NONE_OF_THESE
from clip_local.heads import prototype_head
from tests.fakes.heads import FixedHead, example_head
from tests.fakes.results import InMemoryResultStore
from tests.helpers import encode, rehash

NOW = "2026-12-04T08:00:00.000Z"


@dataclass
class Links:
    asked: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)

    def link(self, bucket: str | None, key: str | None, version_id: str | None) -> str | None:
        self.asked.append((bucket, key, version_id))
        return f"https://signed.example/{key}?v={version_id}"


@dataclass
class Bus:
    refuse: bool = False
    published: list[Detail] = field(default_factory=list)

    def publish(self, details: Sequence[Detail]) -> int:
        if self.refuse:
            return len(details)
        self.published += details
        return 0


def stored(store: InMemoryResultStore, head: Head, count: int, *, rate: float = 1.0) -> list[str]:
    rng = np.random.default_rng(3)
    ids = []
    for i in range(count):
        result = ResultFields.from_prediction(
            head.predict(rng.normal(0, 0.05, (1, 512)).astype(np.float32))[0], head_version=head.version
        )
        upload = i % 2 == 0
        source = (
            SourceInfo(type="s3", bucket="uploads", key=f"uploads/{i}.jpg", version_id=f"v{i}")
            if upload
            else SourceInfo(type="api")
        )
        item = ClassificationItem.classified(
            f"p{i:02d}",
            result,
            source=source,
            sequencer=f"{i + 1:020d}" if upload else None,
            review_sample_rate=rate,
        )
        if upload:
            assert store.put_if_newer(item)
        else:
            store.put_api_results([item])
        ids.append(item.picture_id)
    return ids


@pytest.fixture
def parts() -> tuple[InMemoryResultStore, FixedHead, Links, Bus]:
    return InMemoryResultStore(), FixedHead(), Links(), Bus()


def service(parts: tuple[InMemoryResultStore, FixedHead, Links, Bus], rate: float = 0.0) -> ReviewService:
    store, head, links, bus = parts
    return ReviewService(store, head, links, clock=lambda: NOW, events=bus, review_sample_rate=rate)


def test_pages_follow_the_cursor_with_links_only_for_uploads(
    parts: tuple[InMemoryResultStore, FixedHead, Links, Bus],
) -> None:
    ids = stored(parts[0], parts[1].head, 9)
    reviews, seen, cursor = service(parts), [], None
    while True:
        page = reviews.page(limit=4, cursor=cursor)
        assert page.classes == list(parts[1].head.classes) and page.none_of_these == NONE_OF_THESE
        seen += page.items
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(i.picture_id for i in seen) == ids
    assert [i.margin for i in seen] == sorted(i.margin or 0 for i in seen)
    for item in seen:
        assert len(item.top) == 3
        if item.source == "s3":
            assert item.image_url == f"https://signed.example/{item.key}?v=v{int(item.picture_id[1:])}"
        else:
            assert item.image_url is None
    assert len(parts[2].asked) == 5  # one link per upload, none for API results
    with pytest.raises(InvalidCursorError):
        reviews.page(limit=4, cursor="bm90IGEgY3Vyc29y")


def test_a_label_is_checked_against_the_head_served_now(
    parts: tuple[InMemoryResultStore, FixedHead, Links, Bus],
) -> None:
    ids = stored(parts[0], parts[1].head, 2)
    reviews = service(parts)
    old_class = parts[1].head.classes[0]
    renamed = json.loads(prototype_head(1))
    renamed["classes"][0] = "selfie"
    parts[1].head = Head(parse_weights(encode(rehash(renamed))))  # another head activated meanwhile
    with pytest.raises(LabelError, match='"portrait" is not one of'):
        reviews.label(ids[0], old_class, by="cognito:a@example.com")
    result, unpublished = reviews.label(ids[0], "selfie", by="cognito:a@example.com")
    assert result.person_label == "selfie" and result.final_label == "selfie" and unpublished == 0
    item = parts[0].get(ids[0])
    assert item is not None and (item.labeled_by, item.labeled_at) == ("cognito:a@example.com", NOW)


def test_each_label_is_announced_and_a_refused_announcement_is_counted(
    parts: tuple[InMemoryResultStore, FixedHead, Links, Bus],
) -> None:
    ids = stored(parts[0], parts[1].head, 2)
    reviews = service(parts)
    label = parts[1].head.classes[5]
    reviews.label(ids[0], label, by="cognito:a@example.com")
    (added,) = parts[3].published
    machine = parts[0].get(ids[0])
    assert isinstance(added, LabelAdded) and machine is not None
    assert (added.picture_id, added.label, added.machine_label, added.labeled_at) == (
        ids[0],
        label,
        machine.top_label,
        NOW,
    )
    parts[3].refuse = True
    result, unpublished = reviews.label(ids[1], NONE_OF_THESE, by="cognito:a@example.com")
    assert unpublished == 1 and result.person_label == NONE_OF_THESE
    assert (item := parts[0].get(ids[1])) is not None and item.person_label == NONE_OF_THESE


def test_unknown_pictures_and_missing_labels_are_not_found(
    parts: tuple[InMemoryResultStore, FixedHead, Links, Bus],
) -> None:
    ids = stored(parts[0], parts[1].head, 1)
    reviews = service(parts)
    with pytest.raises(ResultNotFoundError, match="no classified result for pictureId 'nope'"):
        reviews.label("nope", parts[1].head.classes[0], by="x")
    with pytest.raises(ResultNotFoundError, match="has no person's label"):
        reviews.unlabel(ids[0])


@pytest.mark.parametrize(("rate", "queued"), [(0.0, False), (1.0, True)])
def test_a_withdrawal_requeues_what_still_needs_a_person(
    parts: tuple[InMemoryResultStore, FixedHead, Links, Bus], rate: float, queued: bool
) -> None:
    """The example head has no guard, so only the sampled share (the rate) waits again."""
    ids = stored(parts[0], example_head(), 1)
    reviews = service(parts, rate=rate)
    reviews.label(ids[0], parts[1].head.classes[0], by="x")
    result = reviews.unlabel(ids[0])
    assert result.queued is queued and result.person_label is None
    assert (ids[0] in {i.picture_id for i in reviews.page(limit=10, cursor=None).items}) is queued

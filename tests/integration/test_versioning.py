"""S3 versioning on the (versioned) upload bucket: every delete sequence ends as S3 itself shows the key,
whatever order the events arrive in (moto server, real upload function, tiny model)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.paths import REPO_ROOT
from clip_local.stack import LocalStack, local_stack

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
V1 = (FIXTURES / "landscape_rgb.jpg").read_bytes()
V2 = (FIXTURES / "small_rgb.png").read_bytes()


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack() as running:
        yield running


def etag(event: dict[str, Any]) -> str:
    return str(event["Records"][0]["s3"]["object"]["eTag"])


def version(event: dict[str, Any]) -> str:
    return str(event["Records"][0]["s3"]["object"]["versionId"])


def item(stack: LocalStack, key: str) -> Any:
    return stack.result(picture_id_for_key(key, stack.key_prefix))


def deliver(stack: LocalStack, *events: dict[str, Any]) -> None:
    for event in events:
        assert stack.invoker.invoke(event)


def truth(stack: LocalStack, key: str) -> tuple[str, str | None]:
    """What S3 shows for the key now: ("classified", current ETag) or ("deleted", None)."""
    current = stack.upload.function().classifier.source.current(stack.upload_bucket, key)
    return ("deleted", None) if current is None else ("classified", current.etag)


def check(stack: LocalStack, key: str) -> None:
    status, current_etag = truth(stack, key)
    got = item(stack, key)
    assert got is not None and got.status == status, got
    if current_etag is not None:
        assert got.source.etag == current_etag


def test_deleting_a_noncurrent_version_keeps_the_picture(stack: LocalStack) -> None:
    key = stack.key_prefix + "v-noncurrent.jpg"
    first, second = stack.uploads.put_event(key, V1), stack.uploads.put_event(key, V2)
    deliver(stack, first, second, stack.uploads.delete_version_event(key, version(first)))
    assert item(stack, key).status == "classified" and item(stack, key).source.etag == etag(second)
    check(stack, key)


def test_deleting_the_current_version_shows_the_previous_one(stack: LocalStack) -> None:
    key = stack.key_prefix + "v-current.jpg"
    first, second = stack.uploads.put_event(key, V1), stack.uploads.put_event(key, V2)
    deliver(stack, first, second, stack.uploads.delete_version_event(key, version(second)))
    assert item(stack, key).source.etag == etag(first)
    check(stack, key)


def test_removing_a_delete_marker_brings_the_picture_back(stack: LocalStack) -> None:
    key = stack.key_prefix + "v-restored.jpg"
    first = stack.uploads.put_event(key, V1)
    deleted = stack.uploads.delete_event(key)
    assert deleted["Records"][0]["eventName"] == "ObjectRemoved:DeleteMarkerCreated"
    deliver(stack, first, deleted)
    assert item(stack, key).status == "deleted"
    deliver(stack, stack.uploads.delete_version_event(key, version(deleted)))
    assert item(stack, key).status == "classified" and item(stack, key).source.etag == etag(first)
    check(stack, key)


def test_deleting_the_only_version_deletes_the_picture(stack: LocalStack) -> None:
    key = stack.key_prefix + "v-only.jpg"
    first = stack.uploads.put_event(key, V1)
    deliver(stack, first, stack.uploads.delete_version_event(key, version(first)))
    assert item(stack, key).status == "deleted"
    check(stack, key)


@pytest.mark.parametrize(
    "scenario", ["marker-removed", "noncurrent-deleted", "current-deleted", "marker-kept"]
)
def test_every_delivery_order_ends_as_s3_shows_the_key(stack: LocalStack, scenario: str) -> None:
    """All orders of each sequence's events (S3 promises no order): the final item matches S3's state."""
    for n, order in enumerate(itertools.permutations(range(3))):
        key = f"{stack.key_prefix}v-{scenario}-{n}.jpg"
        first = stack.uploads.put_event(key, V1)
        if scenario == "marker-removed":
            marker = stack.uploads.delete_event(key)
            events = [first, marker, stack.uploads.delete_version_event(key, version(marker))]
        elif scenario == "marker-kept":
            events = [first, stack.uploads.put_event(key, V2), stack.uploads.delete_event(key)]
        else:
            second = stack.uploads.put_event(key, V2)
            gone = first if scenario == "noncurrent-deleted" else second
            events = [first, second, stack.uploads.delete_version_event(key, version(gone))]
        deliver(stack, *(events[i] for i in order))
        check(stack, key)

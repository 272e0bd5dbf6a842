"""The S3 adapter of the upload path against in-process moto: one ``GetObject`` per image, pinned to the
event's version (versioned bucket) or conditional on its ETag (unversioned), the size limit enforced from
the response's headers with no byte of body read."""

from __future__ import annotations

from typing import Any

import pytest

from clip_classifier.exceptions import ImageTooLargeError
from clip_classifier.ingest.objects import ObjectRef
from clip_classifier.ingest.s3_source import S3ObjectSource
from tests.helpers import FaultyClient, SpyBody

LIMIT = 1000


@pytest.fixture(params=["versioned", "unversioned"])
def bucket(request: pytest.FixtureRequest, s3: Any) -> tuple[Any, str, bool]:
    name = f"uploads-{request.param}"
    s3.create_bucket(Bucket=name)
    versioned = request.param == "versioned"
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return s3, name, versioned


def put(s3: Any, bucket: str, key: str, body: bytes, versioned: bool) -> ObjectRef:
    response = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return ObjectRef(
        bucket, key, response.get("VersionId") if versioned else None, response["ETag"].strip('"')
    )


def test_one_get_object_reads_the_events_version(bucket: tuple[Any, str, bool]) -> None:
    s3, name, versioned = bucket
    client = FaultyClient(s3)
    ref = put(s3, name, "a.jpg", b"first", versioned)
    opened = S3ObjectSource(client, max_bytes=LIMIT).open(ref)
    assert opened is not None
    with opened.stream as stream:
        assert stream.read() == b"first"
    assert client.calls == {"get_object": 1}
    assert opened.version.etag == ref.etag and opened.version.size == 5
    assert opened.version.version_id == ref.version_id and opened.version.last_modified


def test_an_oversize_object_is_refused_from_its_headers_with_no_body_read(
    bucket: tuple[Any, str, bool],
) -> None:
    s3, name, versioned = bucket
    client = FaultyClient(s3)
    bodies: list[SpyBody] = []

    def spy(response: dict[str, Any]) -> dict[str, Any]:
        bodies.append(SpyBody(response["Body"]))
        return {**response, "Body": bodies[-1]}

    client.responses["get_object"] = [spy]
    ref = put(s3, name, "big.jpg", b"\xff" * (LIMIT + 1), versioned)
    with pytest.raises(ImageTooLargeError, match=f"{LIMIT + 1} bytes; the limit is {LIMIT}"):
        S3ObjectSource(client, max_bytes=LIMIT).open(ref)
    assert client.calls == {"get_object": 1}
    assert bodies[0].read_bytes == 0 and bodies[0].closed


def test_an_overwritten_object_is_left_to_the_newer_event(bucket: tuple[Any, str, bool]) -> None:
    s3, name, versioned = bucket
    old = put(s3, name, "b.jpg", b"old", versioned)
    put(s3, name, "b.jpg", b"newer content", versioned)
    opened = S3ObjectSource(s3, max_bytes=LIMIT).open(old)
    if versioned:  # the event's own version is still there: it is what the event classifies
        assert opened is not None and opened.stream.read() == b"old"
    else:  # the ETag no longer matches (412): the newer event classifies the new content
        assert opened is None


def test_a_vanished_object_is_none(bucket: tuple[Any, str, bool]) -> None:
    s3, name, versioned = bucket
    ref = put(s3, name, "c.jpg", b"gone", versioned)
    if versioned:
        s3.delete_object(Bucket=name, Key="c.jpg", VersionId=ref.version_id)
    else:
        s3.delete_object(Bucket=name, Key="c.jpg")
    assert S3ObjectSource(s3, max_bytes=LIMIT).open(ref) is None


def test_an_event_without_etag_or_version_reads_the_current_object(s3: Any) -> None:
    s3.create_bucket(Bucket="plain")
    s3.put_object(Bucket="plain", Key="d.jpg", Body=b"current")
    opened = S3ObjectSource(s3, max_bytes=LIMIT).open(ObjectRef("plain", "d.jpg", None, None))
    assert opened is not None and opened.stream.read() == b"current"

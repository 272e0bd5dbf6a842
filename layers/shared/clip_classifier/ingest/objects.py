"""What the upload path knows of an S3 object before and after it opens it: plain data, no SDK.

The object source port (:class:`clip_classifier.ports.ObjectSource`) speaks in these types, so the jobs and
their in-memory fakes never import the S3 adapter (:mod:`.s3_source`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from clip_classifier.ingest.object_stream import ObjectStream


class ObjectLocation(Protocol):
    """Which object (and version) to read: an S3 event record, or a backfill's listed key."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def etag(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class CurrentVersion:
    version_id: str | None
    etag: str
    size: int
    #: ISO-8601 UTC, millisecond precision (S3 itself keeps seconds).
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class OpenedObject:
    stream: ObjectStream
    version: CurrentVersion


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version to read (satisfies :class:`~.s3_source.ObjectLocation`)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None

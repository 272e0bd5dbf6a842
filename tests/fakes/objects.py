"""An S3 bucket in memory, behind the object source port: versions, ETags, deletions and a size limit."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from clip_classifier.exceptions import ImageTooLargeError, TransientSourceError
from clip_classifier.ingest.object_stream import ObjectStream
from clip_classifier.ingest.objects import CurrentVersion, ObjectLocation, OpenedObject


@dataclass
class StoredVersion:
    version_id: str
    data: bytes
    last_modified: str

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class InMemoryObjectSource:
    """Objects by (bucket, key): a list of versions, newest last; ``None`` on top is a delete marker."""

    max_bytes: int = 20 * 1024 * 1024
    objects: dict[tuple[str, str], list[StoredVersion | None]] = field(default_factory=dict)
    #: Every call, for tests that count requests ("no download for a skipped key").
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: Errors to raise on the next calls of ``open``, one per call.
    open_faults: list[Exception] = field(default_factory=list)
    _clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def put(self, bucket: str, key: str, data: bytes) -> StoredVersion:
        self._clock += timedelta(seconds=1)
        versions = self.objects.setdefault((bucket, key), [])
        version = StoredVersion(
            f"v{len(versions) + 1}",
            data,
            self._clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
        versions.append(version)
        return version

    def delete(self, bucket: str, key: str) -> None:
        self.objects.setdefault((bucket, key), []).append(None)

    def _latest(self, bucket: str, key: str) -> StoredVersion | None:
        versions = self.objects.get((bucket, key)) or [None]
        return versions[-1]

    def current(self, bucket: str, key: str) -> CurrentVersion | None:
        self.calls.append(("current", key))
        latest = self._latest(bucket, key)
        if latest is None:
            return None
        return CurrentVersion(latest.version_id, latest.etag, len(latest.data), latest.last_modified)

    def open(self, location: ObjectLocation) -> OpenedObject | None:
        self.calls.append(("open", location.key))
        if self.open_faults:
            raise self.open_faults.pop(0)
        if location.version_id:
            found = [
                v
                for v in self.objects.get((location.bucket, location.key), [])
                if v is not None and v.version_id == location.version_id
            ]
            version = found[0] if found else None
        else:
            version = self._latest(location.bucket, location.key)
            if version is not None and location.etag and version.etag != location.etag.strip('"'):
                return None
        if version is None:
            return None
        if len(version.data) > self.max_bytes:
            raise ImageTooLargeError(f"image is {len(version.data)} bytes; the limit is {self.max_bytes}")
        stream = ObjectStream(
            io.BytesIO(version.data), where=f"s3://{location.bucket}/{location.key}", max_bytes=self.max_bytes
        )
        current = CurrentVersion(version.version_id, version.etag, len(version.data), version.last_modified)
        return OpenedObject(stream, current)


class BrokenBody(io.BytesIO):
    """A body whose transfer fails part-way, as a reset connection would."""

    def __init__(self, data: bytes, after: int) -> None:
        super().__init__(data)
        self.after = after

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() >= self.after:
            raise TransientSourceError("connection reset")
        return super().read(size if size is not None and size >= 0 else -1)

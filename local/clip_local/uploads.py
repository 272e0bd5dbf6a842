"""S3 event notifications, emulated: each put or delete through this class becomes an S3 event record.

moto stores the object; the record carries the real ETag, size and version id, and a sequencer that grows
with time, as S3's does for events on the same key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from .events import s3_event

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class LocalUploads:
    def __init__(self, s3: S3Client, bucket: str, deliver: Callable[[dict[str, Any]], Any]) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.deliver = deliver
        self._lock = threading.Lock()
        self._last = 0

    def next_sequencer(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:X}"

    def put_event(self, key: str, data: bytes) -> dict[str, Any]:
        """Store the object and return its notification (without delivering it)."""
        response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
        return {
            "Records": [
                s3_event(
                    "ObjectCreated:Put",
                    self.bucket,
                    quote_plus(key, safe="/"),
                    size=len(data),
                    etag=str(response["ETag"]).strip('"'),
                    sequencer=self.next_sequencer(),
                    version_id=response.get("VersionId"),
                )
            ]
        }

    def delete_event(self, key: str) -> dict[str, Any]:
        response = self.s3.delete_object(Bucket=self.bucket, Key=key)
        return {
            "Records": [
                s3_event(
                    "ObjectRemoved:Delete"
                    if not response.get("DeleteMarker")
                    else "ObjectRemoved:DeleteMarkerCreated",
                    self.bucket,
                    quote_plus(key, safe="/"),
                    sequencer=self.next_sequencer(),
                    version_id=response.get("VersionId"),
                )
            ]
        }

    def delete_version_event(self, key: str, version_id: str) -> dict[str, Any]:
        """Remove one version (or a delete marker) for good, as ``DeleteObject`` with a ``VersionId`` does."""
        self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        return {
            "Records": [
                s3_event(
                    "ObjectRemoved:Delete",
                    self.bucket,
                    quote_plus(key, safe="/"),
                    sequencer=self.next_sequencer(),
                    version_id=version_id,
                )
            ]
        }

    def put(self, key: str, data: bytes) -> Any:
        return self.deliver(self.put_event(key, data))

    def delete(self, key: str) -> Any:
        return self.deliver(self.delete_event(key))

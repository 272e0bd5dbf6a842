"""Read an uploaded object for classification: the S3 side of the upload path.

One ``GetObject`` per image, pinned to the event's version — or, on an unversioned bucket, conditional on
the event's ETag — so a concurrent overwrite cannot slip in; the size limit is checked from the response's
``ContentLength`` before any byte of body is read (a ``HeadObject`` first would be a second billed request
and a second round trip per image). The body comes back as an :class:`~.object_stream.ObjectStream`, which the decoder reads while it
still arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from clip_classifier.aws import AWS_ERRORS, ErrorFamily, aws_error, is_not_found, is_precondition_failed
from clip_classifier.exceptions import (
    ImageTooLargeError,
    SourceAccessDeniedError,
    SourceObjectError,
    TransientSourceError,
)
from clip_classifier.ingest.object_stream import ObjectStream
from clip_classifier.ingest.objects import CurrentVersion, ObjectLocation, OpenedObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_ERRORS = ErrorFamily(other=SourceObjectError, transient=TransientSourceError, denied=SourceAccessDeniedError)


def _iso(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _version(meta: Any) -> CurrentVersion:
    return CurrentVersion(
        version_id=meta.get("VersionId") or None,
        etag=str(meta.get("ETag", "")).strip('"'),
        size=int(meta.get("ContentLength", 0)),
        last_modified=_iso(meta.get("LastModified")),
    )


class S3ObjectSource:
    def __init__(self, s3: S3Client, *, max_bytes: int) -> None:
        self.s3 = s3
        self.max_bytes = max_bytes

    def current(self, bucket: str, key: str) -> CurrentVersion | None:
        """The key's current version, or ``None`` when it has none (deleted, or a delete marker on top)."""
        where = f"s3://{bucket}/{key}"
        try:
            meta = self.s3.head_object(Bucket=bucket, Key=key)
        except AWS_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise aws_error(exc, _ERRORS, action="read", target=where) from exc
        return _version(meta)

    def open(self, event: ObjectLocation) -> OpenedObject | None:
        """The object's body as a stream with the version read, or ``None`` if it changed or vanished since
        the event (the newer event carries it). A size over the limit is an :class:`ImageTooLargeError`;
        access and transient errors raise :class:`SourceObjectError` subclasses.

        One request: ``GetObject`` pinned to the event's version, or (unversioned bucket) conditional on the
        event's ETag. Its headers arrive before the body, so an oversize object is refused from
        ``ContentLength`` and the stream closed before a byte of body is read.
        """
        where = f"s3://{event.bucket}/{event.key}"
        pin: dict[str, Any] = {}
        if event.version_id:
            pin["VersionId"] = event.version_id
        elif event.etag:
            pin["IfMatch"] = '"' + event.etag.strip('"') + '"'
        try:
            response = self.s3.get_object(Bucket=event.bucket, Key=event.key, **pin)
        except AWS_ERRORS as exc:
            if is_not_found(exc) or is_precondition_failed(exc):
                return None  # deleted, or overwritten since this event: the newer event classifies it
            raise aws_error(exc, _ERRORS, action="read", target=where) from exc
        version = _version(response)
        if version.size > self.max_bytes:
            response["Body"].close()
            raise ImageTooLargeError(f"image is {version.size} bytes; the limit is {self.max_bytes}")
        return OpenedObject(ObjectStream(response["Body"], where=where, max_bytes=self.max_bytes), version)

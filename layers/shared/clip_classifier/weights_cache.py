"""Load the head weights once per container and keep them fresh.

The location is an ``s3://bucket/key`` URI or a local path (weights bundled with the code). From S3 the file
is downloaded into the cache directory (``/tmp`` on Lambda) atomically: written to a temporary file in the
same directory, verified (schema and content sha256), then renamed, so a half-written or corrupt file is
never served. Warm invocations reuse the parsed head from memory; at most every ``refresh_seconds`` a
``HeadObject`` compares the ETag and a changed object is fetched and swapped in. A copy already in ``/tmp``
for the current ETag (left by an earlier process in the same execution environment) is verified and reused
instead of downloaded.

If a refresh check fails *transiently* while a verified head is already loaded, that head keeps serving and
the failure is logged; every other failure raises an error naming the location.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .aws import AWS_ERRORS, ErrorFamily, aws_error
from .exceptions import (
    ConfigurationError,
    WeightsAccessDeniedError,
    WeightsError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from .head import Head
from .weights_format import parse_weights

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)
_ERRORS = ErrorFamily(
    other=WeightsError,
    transient=WeightsUnavailableError,
    denied=WeightsAccessDeniedError,
    not_found=WeightsNotFoundError,
)


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location | None:
    """``s3://bucket/key`` → location; anything else → ``None`` (a local path)."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise WeightsNotFoundError(f"weights location {uri!r} must look like s3://bucket/key")
    return S3Location(bucket, key)


class WeightsCache:
    """Serves a verified :class:`Head` for one weights location."""

    def __init__(
        self,
        uri: str,
        *,
        s3: S3Client | None,
        cache_dir: Path,
        refresh_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uri = uri
        self.location = parse_s3_uri(uri)
        if self.location is not None and s3 is None:
            raise ConfigurationError(f"weights location {uri} is in S3 but no S3 client was given")
        self._s3 = s3
        self.cache_dir = cache_dir
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._head: Head | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")
        #: How many times the object body was downloaded (observability and tests).
        self.downloads = 0

    # --- public --------------------------------------------------------------------------------------

    def get(self) -> Head:
        """The current head, loading or refreshing it when due."""
        with self._lock:
            if self._head is not None and self._clock() - self._checked_at < self.refresh_seconds:
                return self._head
            if self.location is None:
                if self._head is None:
                    self._head = self._load_local(Path(self.uri))
                self._checked_at = self._clock()
                return self._head
            return self._refresh_from_s3(self.location)

    # --- local path ----------------------------------------------------------------------------------

    def _load_local(self, path: Path) -> Head:
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise WeightsNotFoundError(f"weights file {path} does not exist") from exc
        except PermissionError as exc:
            raise WeightsAccessDeniedError(f"weights file {path} is not readable") from exc
        return Head(parse_weights(raw, location=str(path)))

    # --- S3 ------------------------------------------------------------------------------------------

    def _client(self) -> S3Client:
        assert self._s3 is not None  # checked in __init__ for S3 locations
        return self._s3

    def _refresh_from_s3(self, loc: S3Location) -> Head:
        try:
            etag = self._head_etag(loc)
        except WeightsUnavailableError:
            if self._head is None:
                raise
            logger.warning("weights refresh check failed; keeping the loaded head", extra={"uri": str(loc)})
            return self._head
        if etag == self._etag and self._head is not None:
            self._checked_at = self._clock()
            return self._head
        head, etag = self._from_disk_or_download(loc, etag)
        if self._head is not None and head.version != self._head.version:
            logger.info("weights changed", extra={"uri": str(loc), "head_version": head.version})
        self._head, self._etag, self._checked_at = head, etag, self._clock()
        return head

    def _head_etag(self, loc: S3Location) -> str:
        try:
            response = self._client().head_object(Bucket=loc.bucket, Key=loc.key)
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"weights object {loc}") from exc
        return str(response["ETag"]).strip('"')

    def _cache_path(self, loc: S3Location, etag: str) -> Path:
        uri_hash = hashlib.sha256(str(loc).encode()).hexdigest()[:16]
        safe_etag = "".join(c for c in etag if c.isalnum() or c == "-")[:64]
        return self.cache_dir / f"weights-{uri_hash}-{safe_etag}.json"

    def _from_disk_or_download(self, loc: S3Location, etag: str) -> tuple[Head, str]:
        cached = self._cache_path(loc, etag)
        if cached.exists():
            try:
                return Head(parse_weights(cached.read_bytes(), location=f"{loc} (cached {cached})")), etag
            except (WeightsError, OSError) as exc:
                # A damaged cache is not the object's fault: drop it and fetch a fresh copy.
                logger.warning(
                    "discarding unusable cached weights", extra={"path": str(cached), "error": str(exc)}
                )
                cached.unlink(missing_ok=True)
        return self._download(loc)

    def _download(self, loc: S3Location) -> tuple[Head, str]:
        try:
            response = self._client().get_object(Bucket=loc.bucket, Key=loc.key)
            raw = response["Body"].read()
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"weights object {loc}") from exc
        self.downloads += 1
        etag = str(response["ETag"]).strip('"')
        head = Head(parse_weights(raw, location=str(loc)))  # verify before anything touches the disk
        target = self._cache_path(loc, etag)
        self._write_atomically(target, raw)
        # Older versions of the same object are dead weight in a 512 MB /tmp.
        for stale in target.parent.glob(target.name.rsplit("-", 1)[0] + "-*.json"):
            if stale != target:
                stale.unlink(missing_ok=True)
        return head, etag

    def _write_atomically(self, target: Path, raw: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".partial-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(raw)
                Path(tmp).replace(target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # /tmp full or read-only: the verified head is in memory and serves; only the disk copy is lost.
            logger.warning("could not cache weights on disk", extra={"path": str(target), "error": str(exc)})

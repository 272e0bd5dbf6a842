"""Load the head weights once per container and keep them fresh.

The weights live in a :class:`WeightsSource`: an S3 object in a deployment
(:class:`~clip_classifier.storage.weights_object.S3WeightsObject`), or a local file
(:class:`LocalWeightsFile`, the default head baked into the image). A copy of a remote source is kept in the
cache directory (``/tmp`` on Lambda) and written atomically: to a temporary file in the same directory,
verified (schema and content sha256), then renamed, so a half-written or corrupt file is never served.
Warm invocations reuse the parsed head from memory; at most every ``refresh_seconds`` the source's version
tag (the S3 ETag) is compared and a changed file is fetched and swapped in. A copy already in ``/tmp`` for
the current tag (left by an earlier process in the same execution environment) is verified and reused
instead of fetched.

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
from pathlib import Path
from typing import Protocol

from clip_classifier.exceptions import (
    WeightsAccessDeniedError,
    WeightsError,
    WeightsNotFoundError,
    WeightsTooLargeError,
    WeightsUnavailableError,
)
from clip_classifier.head.fit import ServedEmbedder, check_head_fits
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import MAX_WEIGHTS_BYTES, parse_weights

logger = logging.getLogger(__name__)


class WeightsSource(Protocol):
    """Where a head's weights file lives. Failures raise :class:`WeightsError` subclasses naming it."""

    @property
    def location(self) -> str:
        """Where it is, for messages and logs (``s3://bucket/key``, a path)."""
        ...

    @property
    def remote(self) -> bool:
        """Whether a fetch is a download worth keeping a verified copy of on disk."""
        ...

    @property
    def metadata(self) -> dict[str, str]:
        """What the source says about the version read last (S3 user metadata: who registered and
        activated the head, when); empty for a local file."""
        ...

    def version_tag(self) -> str:
        """A cheap check of which version is there now (an ETag): a new tag means fetch again. A file over
        :data:`MAX_WEIGHTS_BYTES` is refused here, before a byte of it is read."""
        ...

    def fetch(self) -> tuple[bytes, str]:
        """The file's content and the version tag of what was read (at most :data:`MAX_WEIGHTS_BYTES`)."""
        ...


def check_size(size: int, location: str) -> None:
    """Refuse a weights file over the limit from its size alone (before it is downloaded or read)."""
    if size > MAX_WEIGHTS_BYTES:
        raise WeightsTooLargeError(
            f"weights file {location} is {size:,} bytes; the limit is {MAX_WEIGHTS_BYTES:,}"
        )


class LocalWeightsFile:
    """A weights file on local disk (the image's default head, a test's file)."""

    remote = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self.metadata: dict[str, str] = {}

    def version_tag(self) -> str:
        try:
            stat = self.path.stat()
        except FileNotFoundError as exc:
            raise WeightsNotFoundError(f"weights file {self.path} does not exist") from exc
        check_size(stat.st_size, self.location)
        return f"{stat.st_mtime_ns}-{stat.st_size}"

    def fetch(self) -> tuple[bytes, str]:
        tag = self.version_tag()
        try:
            with self.path.open("rb") as fh:
                return fh.read(MAX_WEIGHTS_BYTES + 1), tag
        except FileNotFoundError as exc:
            raise WeightsNotFoundError(f"weights file {self.path} does not exist") from exc
        except PermissionError as exc:
            raise WeightsAccessDeniedError(f"weights file {self.path} is not readable") from exc


class WeightsCache:
    """Serves a verified :class:`Head` from one weights source (the head provider of every service).

    With ``served`` (every deployed function passes its embedder), a head that does not fit it is refused
    at load and at every refresh: :func:`~clip_classifier.head.fit.check_head_fits`.
    """

    def __init__(
        self,
        source: WeightsSource,
        *,
        cache_dir: Path,
        refresh_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        served: ServedEmbedder | None = None,
    ) -> None:
        self.source = source
        self.served = served
        self.cache_dir = cache_dir
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._head: Head | None = None
        self._tag: str | None = None
        self._checked_at = float("-inf")
        self._metadata: dict[str, str] = {}
        #: How many times the source's content was fetched (observability and tests).
        self.downloads = 0

    @property
    def uri(self) -> str:
        return self.source.location

    def origin(self) -> dict[str, str]:
        """The source's metadata of the head being served (the registry's, for the active head)."""
        return dict(self._metadata)

    def get(self) -> Head:
        """The current head, loading or refreshing it when due."""
        with self._lock:
            if self._head is not None and self._clock() - self._checked_at < self.refresh_seconds:
                return self._head
            return self._refresh()

    def _refresh(self) -> Head:
        try:
            tag = self.source.version_tag()
        except WeightsUnavailableError:
            if self._head is None:
                raise
            logger.warning("weights refresh check failed; keeping the loaded head", extra={"uri": self.uri})
            return self._head
        if tag == self._tag and self._head is not None:
            # The same content, perhaps activated again by someone else: who and when may have changed.
            self._metadata = dict(self.source.metadata)
            self._checked_at = self._clock()
            return self._head
        head, tag = self._from_disk_or_fetch(tag)
        if self._head is not None and head.version != self._head.version:
            logger.info("weights changed", extra={"uri": self.uri, "head_version": head.version})
        self._head, self._tag, self._checked_at = head, tag, self._clock()
        self._metadata = dict(self.source.metadata)
        return head

    def _cache_path(self, tag: str) -> Path:
        uri_hash = hashlib.sha256(self.uri.encode()).hexdigest()[:16]
        safe_tag = "".join(c for c in tag if c.isalnum() or c == "-")[:64]
        return self.cache_dir / f"weights-{uri_hash}-{safe_tag}.json"

    def _from_disk_or_fetch(self, tag: str) -> tuple[Head, str]:
        cached = self._cache_path(tag)
        if self.source.remote and cached.exists():
            try:
                return self._head_of(cached.read_bytes(), f"{self.uri} (cached {cached})"), tag
            except (WeightsError, OSError) as exc:
                # A damaged cache is not the object's fault: drop it and fetch a fresh copy.
                logger.warning(
                    "discarding unusable cached weights", extra={"path": str(cached), "error": str(exc)}
                )
                cached.unlink(missing_ok=True)
        return self._fetch()

    def _fetch(self) -> tuple[Head, str]:
        raw, tag = self.source.fetch()
        self.downloads += 1
        head = self._head_of(raw, self.uri)  # verify before anything touches the disk
        if self.source.remote:
            target = self._cache_path(tag)
            self._write_atomically(target, raw)
            # Older versions of the same object are dead weight in a 512 MB /tmp.
            for stale in target.parent.glob(target.name.rsplit("-", 1)[0] + "-*.json"):
                if stale != target:
                    stale.unlink(missing_ok=True)
        return head, tag

    def _head_of(self, raw: bytes, location: str) -> Head:
        head = Head(parse_weights(raw, location=location))
        if self.served is not None:
            check_head_fits(head, self.served, location=self.uri)
        return head

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

"""The head weights object in S3: the :class:`~clip_classifier.head.weights_cache.WeightsSource` a deployed
function reads (``WeightsUri``), and the one place a weights URI becomes a source.

A ``HeadObject`` gives the version tag (the ETag) that the cache compares at each refresh; a ``GetObject``
fetches the content. AWS failures become the classifier's weights errors, naming the object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from clip_classifier.aws import AWS_ERRORS, ErrorFamily, aws_error
from clip_classifier.exceptions import (
    ConfigurationError,
    WeightsAccessDeniedError,
    WeightsError,
    WeightsNotFoundError,
    WeightsUnavailableError,
)
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.head.weights_cache import LocalWeightsFile, WeightsCache, WeightsSource, check_size
from clip_classifier.head.weights_format import MAX_WEIGHTS_BYTES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

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


class S3WeightsObject:
    """One weights object in S3, read with an injected client."""

    remote = True

    def __init__(self, where: S3Location, s3: S3Client) -> None:
        self.where = where
        self.location = str(where)
        self._s3 = s3
        self.metadata: dict[str, str] = {}

    def version_tag(self) -> str:
        try:
            response = self._s3.head_object(Bucket=self.where.bucket, Key=self.where.key)
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"weights object {self.where}") from exc
        check_size(int(response.get("ContentLength", 0)), self.location)
        self.metadata = dict(response.get("Metadata", {}))
        return str(response["ETag"]).strip('"')

    def fetch(self) -> tuple[bytes, str]:
        try:
            response = self._s3.get_object(Bucket=self.where.bucket, Key=self.where.key)
            body = response["Body"]
            try:
                # The object may have been replaced since its HEAD: the body is read no further than the limit.
                check_size(int(response.get("ContentLength", 0)), self.location)
                raw = body.read(MAX_WEIGHTS_BYTES + 1)
            finally:
                body.close()
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"weights object {self.where}") from exc
        self.metadata = dict(response.get("Metadata", {}))
        return raw, str(response["ETag"]).strip('"')


def weights_source(uri: str, *, s3: S3Client | None) -> WeightsSource:
    """The source ``WEIGHTS_URI`` names: an S3 object (read with ``s3``) or a local file."""
    location = parse_s3_uri(uri)
    if location is None:
        return LocalWeightsFile(Path(uri))
    if s3 is None:
        raise ConfigurationError(f"weights location {uri} is in S3 but no S3 client was given")
    return S3WeightsObject(location, s3)


def weights_cache_for(
    uri: str,
    *,
    s3: S3Client | None,
    cache_dir: Path,
    refresh_seconds: float = 300.0,
    clock: Callable[[], float] = time.monotonic,
    served: ServedEmbedder | None = None,
) -> WeightsCache:
    """A :class:`WeightsCache` over the source ``uri`` names (checked against ``served``, when given)."""
    return WeightsCache(
        weights_source(uri, s3=s3),
        cache_dir=cache_dir,
        refresh_seconds=refresh_seconds,
        clock=clock,
        served=served,
    )

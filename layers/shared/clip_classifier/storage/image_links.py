"""Short-lived links to uploaded images, for a reviewer's page: presigned S3 GETs, made locally (no request).

Only objects of the upload bucket are linked; the link is signed by the function's own role, whose policy
allows nothing but the upload prefix, so a link can never reach another object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3ImageLinks:
    def __init__(self, client: S3Client, bucket: str, *, expires_seconds: int) -> None:
        self.client = client
        self.bucket = bucket
        self.expires_seconds = expires_seconds

    def link(self, bucket: str | None, key: str | None, version_id: str | None) -> str | None:
        """A presigned GET of the version the result was made from, or ``None`` for another bucket (or no key)."""
        if not key or bucket != self.bucket:
            return None
        params = {"Bucket": bucket, "Key": key, **({"VersionId": version_id} if version_id else {})}
        # Signing is local (no request): it fails only without credentials, which no function lacks.
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.expires_seconds)

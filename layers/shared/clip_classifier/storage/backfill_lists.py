"""The keys a rescore could not score, written for a backfill: S3 Inventory–style gzipped CSV files under
the reports bucket, and their ``manifest.json``, which the backfill state machine reads as it reads an S3
Inventory manifest.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from pydantic import BaseModel

from clip_classifier.aws import AWS_ERRORS, ErrorFamily, aws_error
from clip_classifier.exceptions import ResultsStoreError, TransientResultsStoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_ERRORS = ErrorFamily(other=ResultsStoreError, transient=TransientResultsStoreError)


class ManifestResult(BaseModel):
    manifest: str | None
    files: int
    keys: int


class BackfillLists:
    """The keys a rescore could not score, as S3 Inventory–style CSV files and their ``manifest.json``."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str, *, source_bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.source_bucket = source_bucket

    def _folder(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}/needs-backfill/"

    def write(self, run_id: str, segment: int, part: int, rows: list[tuple[str, str]]) -> str:
        """One gzipped CSV of ``(bucket, key)`` rows, keys URL-encoded as S3 Inventory writes them."""
        text = io.StringIO()
        writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for bucket, key in rows:
            writer.writerow([bucket, quote_plus(key, safe="/")])
        key = f"{self._folder(run_id)}data/segment-{segment:06d}-part-{part:04d}.csv.gz"
        self._put(key, gzip.compress(text.getvalue().encode(), mtime=0), "application/gzip")
        return key

    def write_manifest(self, run_id: str) -> ManifestResult:
        files: list[dict[str, Any]] = []
        keys = 0
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self._folder(run_id)}data/"
            )
            for page in pages:
                for entry in page.get("Contents", []):
                    body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                    keys += gzip.decompress(body).count(b"\n")
                    files.append(
                        {
                            "key": entry["Key"],
                            "size": entry["Size"],
                            "MD5checksum": str(entry["ETag"]).strip('"'),
                        }
                    )
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"s3://{self.bucket}/{self.prefix}") from exc
        if not files:
            return ManifestResult(manifest=None, files=0, keys=0)
        manifest = {
            "sourceBucket": self.source_bucket,
            "destinationBucket": f"arn:aws:s3:::{self.bucket}",
            "version": "2016-11-30",
            "creationTimestamp": str(int(time.time() * 1000)),
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key",
            "files": files,
        }
        key = f"{self._folder(run_id)}manifest.json"
        self._put(key, json.dumps(manifest, indent=1).encode(), "application/json")
        return ManifestResult(manifest=f"s3://{self.bucket}/{key}", files=len(files), keys=keys)

    def _put(self, key: str, body: bytes, content_type: str) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="write", target=f"s3://{self.bucket}/{key}") from exc

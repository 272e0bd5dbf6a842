"""Shadow evaluations in the reports bucket: each segment call's figures as a part, and the merged report.

``evaluations/<run id>/parts/<segment>-<part>.json`` (one per call of a segment's loop, so a retried call
overwrites its own part and nothing is counted twice) and ``evaluations/<run id>/report.json``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from clip_classifier.aws import AWS_ERRORS, ErrorFamily, aws_error
from clip_classifier.exceptions import RegistryError, TransientRegistryError
from clip_classifier.registry.evaluation import EvaluationFigures

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_ERRORS = ErrorFamily(other=RegistryError, transient=TransientRegistryError)
#: A part or a report is a few kilobytes (flip counts, a few examples); this bounds what is read.
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024


class S3EvaluationReports:
    def __init__(self, s3: S3Client, bucket: str, prefix: str = "evaluations/") -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def report_key(self, run_id: str) -> str:
        return f"{self.prefix}{run_id}/report.json"

    def _put(self, key: str, document: Any) -> None:
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(document).encode(),
                ContentType="application/json",
            )
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="write", target=f"s3://{self.bucket}/{key}") from exc

    def _get(self, key: str) -> Any:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return json.loads(body.read(MAX_DOCUMENT_BYTES))
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=f"s3://{self.bucket}/{key}") from exc

    def put_part(self, run_id: str, segment: int, part: int, figures: EvaluationFigures) -> str:
        key = f"{self.prefix}{run_id}/parts/{segment:06d}-{part:05d}.json"
        self._put(key, figures.model_dump(by_alias=True))
        return key

    def parts(self, run_id: str) -> list[EvaluationFigures]:
        keys: list[str] = []
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}{run_id}/parts/"
            )
            for page in pages:
                keys += [obj["Key"] for obj in page.get("Contents", [])]
        except AWS_ERRORS as exc:
            raise aws_error(
                exc, _ERRORS, action="list", target=f"s3://{self.bucket}/{self.prefix}{run_id}/"
            ) from exc
        return [EvaluationFigures.model_validate(self._get(key)) for key in sorted(keys)]

    def put_report(self, run_id: str, report: dict[str, Any]) -> str:
        key = self.report_key(run_id)
        self._put(key, report)
        return key

    def report(self, key: str) -> dict[str, Any]:
        document = self._get(key)
        if not isinstance(document, dict):
            raise RegistryError(f"s3://{self.bucket}/{key} is not an evaluation report")
        return document

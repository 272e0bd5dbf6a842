"""The head registry's adapters: records in ``HeadsTable`` (DynamoDB), files in the heads bucket (S3).

Heads bucket layout:

* ``heads/<version>.json`` — every registered head, written once (``IfNoneMatch: *``: an existing file,
  which can only be the same content, is never replaced);
* ``active/head.json`` — the head both functions serve (``WEIGHTS_URI``), a server-side copy of one of the
  above with the registry's metadata (``head-version``, who registered and activated it, when); the bucket
  is versioned, so every activation is kept as an object version;
* ``embedder/manifest.json`` — the deployed model's manifest (``heads init``): what registration checks a
  head against.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from clip_classifier.aws import (
    AWS_ERRORS,
    ErrorFamily,
    aws_error,
    error_code,
    is_not_found,
    is_precondition_failed,
)
from clip_classifier.exceptions import RegistryError, TransientRegistryError, UnknownHeadError
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.head.weights_format import MAX_WEIGHTS_BYTES
from clip_classifier.registry.records import ACTIVE_KEY, ActivePointer, EvaluationRef, HeadRecord, HeadStatus
from clip_classifier.storage import dynamo_values
from clip_classifier.storage.item_codec import from_dynamo, to_dynamo

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

_ERRORS = ErrorFamily(other=RegistryError, transient=TransientRegistryError, not_found=UnknownHeadError)

HEADS_PREFIX = "heads/"
ACTIVE_KEY_S3 = "active/head.json"
EMBEDDER_KEY = "embedder/manifest.json"


def head_key(version: str) -> str:
    return f"{HEADS_PREFIX}{version}.json"


def _item(model: HeadRecord | ActivePointer, **extra: Any) -> dict[str, Any]:
    plain = to_dynamo({**model.model_dump(by_alias=True, exclude_none=True, mode="json"), **extra})
    return {k: dynamo_values.serialize(v) for k, v in plain.items()}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_dynamo(dynamo_values.deserialize(v)) for k, v in item.items()}


class DynamoHeadRecords:
    """:class:`~clip_classifier.registry.service.HeadRecords` in ``HeadsTable`` (key ``version``)."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def _call(self, action: str, request: Any) -> Any:
        try:
            return request()
        except AWS_ERRORS as exc:
            raise aws_error(
                exc, _ERRORS, action=action, target=f"head registry table {self.table_name}"
            ) from exc

    def get(self, version: str) -> HeadRecord | None:
        response = self._call(
            "read",
            lambda: self.client.get_item(
                TableName=self.table_name, Key={"version": {"S": version}}, ConsistentRead=True
            ),
        )
        item = response.get("Item")
        return HeadRecord.model_validate(_plain(item)) if item else None

    def put_new(self, record: HeadRecord) -> bool:
        return self._conditional(
            "write",
            lambda: self.client.put_item(
                TableName=self.table_name,
                Item=_item(record),
                ConditionExpression="attribute_not_exists(version)",
            ),
        )

    def _conditional(self, action: str, request: Any) -> bool:
        try:
            request()
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise aws_error(
                exc, _ERRORS, action=action, target=f"head registry table {self.table_name}"
            ) from exc
        return True

    def all(self) -> list[HeadRecord]:
        records: list[HeadRecord] = []
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._call("read", lambda request=kwargs: self.client.scan(**request))
            records += [
                HeadRecord.model_validate(_plain(item))
                for item in response.get("Items", [])
                if item.get("version", {}).get("S") != ACTIVE_KEY
            ]
            start = response.get("LastEvaluatedKey")
            if not start:
                return records

    def active(self) -> ActivePointer | None:
        response = self._call(
            "read",
            lambda: self.client.get_item(
                TableName=self.table_name, Key={"version": {"S": ACTIVE_KEY}}, ConsistentRead=True
            ),
        )
        item = response.get("Item")
        if not item:
            return None
        plain = _plain(item)
        plain["version"] = plain.pop("activeVersion")
        return ActivePointer.model_validate(plain)

    def set_active(self, pointer: ActivePointer, *, expected_revision: int | None) -> bool:
        item = _item(pointer)
        item["activeVersion"] = item.pop("version")
        item["version"] = {"S": ACTIVE_KEY}
        if expected_revision is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(version)"}
        else:
            condition = {
                "ConditionExpression": "revision = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_revision)}},
            }
        return self._conditional(
            "write", lambda: self.client.put_item(TableName=self.table_name, Item=item, **condition)
        )

    def set_status(
        self, version: str, status: HeadStatus, *, by: str | None = None, at: str | None = None
    ) -> None:
        updates = ["#status = :status"]
        values: dict[str, Any] = {":status": {"S": status}}
        if by is not None and at is not None:
            updates += ["activatedBy = :by", "activatedAt = :at"]
            values |= {":by": {"S": by}, ":at": {"S": at}}
        self._call(
            "write",
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"version": {"S": version}},
                UpdateExpression="SET " + ", ".join(updates),
                ConditionExpression="attribute_exists(version)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            ),
        )

    def put_evaluation(self, version: str, ref: EvaluationRef) -> None:
        plain = to_dynamo(ref.model_dump(by_alias=True, exclude_none=True, mode="json"))
        self._call(
            "write",
            lambda: self.client.update_item(
                TableName=self.table_name,
                Key={"version": {"S": version}},
                UpdateExpression="SET evaluations.#run = :ref",
                ConditionExpression="attribute_exists(version)",
                ExpressionAttributeNames={"#run": ref.run_id},
                ExpressionAttributeValues={":ref": dynamo_values.serialize(plain)},
            ),
        )


class S3HeadFiles:
    """:class:`~clip_classifier.registry.service.HeadFiles` in the heads bucket."""

    def __init__(self, bucket: str, s3: S3Client) -> None:
        self.bucket = bucket
        self.s3 = s3

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put_head(self, version: str, raw: bytes) -> None:
        key = head_key(version)
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=raw, ContentType="application/json", IfNoneMatch="*"
            )
        except AWS_ERRORS as exc:
            if is_precondition_failed(exc) or error_code(exc) == "ConditionalRequestConflict":
                return  # already there: its name is its content's hash, so it is this file
            raise aws_error(exc, _ERRORS, action="write", target=self._where(key)) from exc

    def get_head(self, version: str) -> bytes:
        key = head_key(version)
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
            with response["Body"] as body:
                return body.read(MAX_WEIGHTS_BYTES + 1)
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="read", target=self._where(key)) from exc

    def publish(self, version: str, metadata: dict[str, str]) -> None:
        try:
            self.s3.copy_object(
                Bucket=self.bucket,
                Key=ACTIVE_KEY_S3,
                CopySource={"Bucket": self.bucket, "Key": head_key(version)},
                MetadataDirective="REPLACE",
                Metadata=metadata,
                ContentType="application/json",
            )
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="publish", target=self._where(ACTIVE_KEY_S3)) from exc

    def served(self) -> dict[str, str] | None:
        try:
            response = self.s3.head_object(Bucket=self.bucket, Key=ACTIVE_KEY_S3)
        except AWS_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise aws_error(exc, _ERRORS, action="read", target=self._where(ACTIVE_KEY_S3)) from exc
        return dict(response.get("Metadata", {}))

    def embedder(self) -> ServedEmbedder | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=EMBEDDER_KEY)
            with response["Body"] as body:
                manifest = json.loads(body.read(1024 * 1024))
        except AWS_ERRORS as exc:
            if is_not_found(exc):
                return None
            raise aws_error(exc, _ERRORS, action="read", target=self._where(EMBEDDER_KEY)) from exc
        except ValueError as exc:
            raise RegistryError(f"{self._where(EMBEDDER_KEY)} is not a model manifest: {exc}") from exc
        try:
            return ServedEmbedder(
                output_dim=int(manifest["output_dim"]), model_sha256=str(manifest["model_sha256"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self._where(EMBEDDER_KEY)} is not a model manifest: {exc}") from exc

    def put_embedder(self, manifest: bytes) -> None:
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=EMBEDDER_KEY, Body=manifest, ContentType="application/json"
            )
        except AWS_ERRORS as exc:
            raise aws_error(exc, _ERRORS, action="write", target=self._where(EMBEDDER_KEY)) from exc

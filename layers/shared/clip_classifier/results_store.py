"""DynamoDB adapter for :class:`ClassificationItem` items (table keyed by ``pictureId``).

Floats are written as ``Decimal`` built from the shortest string that round-trips the float32 value, so
boto3's strict decimal context never raises ``Inexact``/``Rounded``. Writes that come from S3 events are
conditional on the event ``sequencer``: a duplicate or older event never overwrites a newer result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from .aws import AWS_ERRORS, ErrorFamily, aws_error, error_code
from .exceptions import ResultsStoreError, TransientResultsStoreError
from .records import ClassificationItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_ERRORS = ErrorFamily(other=ResultsStoreError, transient=TransientResultsStoreError)

#: Keep deletion markers this long so late, out-of-order creates for a deleted key are still recognised.
TOMBSTONE_SECONDS = 30 * 24 * 3600


def to_decimal(value: float) -> Decimal:
    """Exact, compact Decimal for a float32-valued number (no Inexact/Rounded in boto3's context)."""
    return Decimal(str(np.float32(value)))


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return to_decimal(value)
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(record: ClassificationItem) -> dict[str, Any]:
    plain = _to_dynamo(record.model_dump(by_alias=True, exclude_none=True))
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def deserialize(item: dict[str, Any]) -> ClassificationItem:
    plain = {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}
    return ClassificationItem.model_validate(plain)


class ResultsStore:
    """Reads and writes classification results. Accepts an injected low-level DynamoDB client."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def put(self, record: ClassificationItem) -> None:
        """Unconditional write (API results)."""
        try:
            self.client.put_item(TableName=self.table_name, Item=serialize(record))
        except AWS_ERRORS as exc:
            raise self._error(exc, "write") from exc

    def put_if_newer(self, record: ClassificationItem) -> bool:
        """Write unless the table already holds a result from the same or a later S3 event.

        Returns ``False`` when the write was skipped as a duplicate or out-of-order delivery.
        """
        if record.sequencer is None:
            raise ValueError("put_if_newer needs a record with a sequencer")
        if record.status == "deleted":
            record = record.model_copy(update={"expires_at": int(time.time()) + TOMBSTONE_SECONDS})
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=serialize(record),
                ConditionExpression="attribute_not_exists(pictureId) OR attribute_not_exists(#seq) OR #seq < :seq",
                ExpressionAttributeNames={"#seq": "sequencer"},
                ExpressionAttributeValues={":seq": {"S": record.sequencer}},
            )
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._error(exc, "write") from exc
        return True

    def put_many(self, records: Sequence[ClassificationItem]) -> None:
        """Batch write (API batches), retrying unprocessed items with backoff."""
        for start in range(0, len(records), 25):
            requests: list[Any] = [
                {"PutRequest": {"Item": serialize(r)}} for r in records[start : start + 25]
            ]
            for attempt in range(6):
                try:
                    response = self.client.batch_write_item(RequestItems={self.table_name: requests})
                except AWS_ERRORS as exc:
                    raise self._error(exc, "write") from exc
                requests = list(response.get("UnprocessedItems", {}).get(self.table_name, []))
                if not requests:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise TransientResultsStoreError(
                    f"results table {self.table_name} kept throttling a batch write ({len(requests)} items left)"
                )

    def get(self, picture_id: str) -> ClassificationItem | None:
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key={"pictureId": {"S": picture_id}}, ConsistentRead=True
            )
        except AWS_ERRORS as exc:
            raise self._error(exc, "read") from exc
        item = response.get("Item")
        return deserialize(item) if item else None

    def _error(self, exc: BaseException, action: str) -> ResultsStoreError:
        error = aws_error(exc, _ERRORS, action=action, target=f"results table {self.table_name}")
        assert isinstance(error, ResultsStoreError)
        return error

"""The item's codec: :class:`ClassificationItem` ⇄ DynamoDB attribute values.

Floats are written as ``Decimal`` built from the shortest string that round-trips the float32 value, so
boto3's strict decimal context never raises ``Inexact``/``Rounded``; ``None`` fields are left out; binary
attributes (the stored embedding) come back as ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import numpy as np
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from clip_classifier.storage.result_item import ClassificationItem

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_decimal(value: float) -> Decimal:
    """Exact, compact Decimal for a float32-valued number (no Inexact/Rounded in boto3's context)."""
    return Decimal(str(np.float32(value)))


def to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return to_decimal(value)
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Binary):
        return bytes(cast(Any, value))  # Binary defines __bytes__ (its stub says str)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def serialize(record: ClassificationItem) -> dict[str, Any]:
    plain = to_dynamo(record.model_dump(by_alias=True, exclude_none=True))
    return {k: _serializer.serialize(v) for k, v in plain.items()}


def deserialize(item: dict[str, Any]) -> ClassificationItem:
    plain = {k: from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}
    return ClassificationItem.model_validate(plain)


def to_attribute_value(value: Any) -> Any:
    """One value (a number, a map, a list) as a DynamoDB attribute value, for an update expression."""
    return _serializer.serialize(to_dynamo(value))


@dataclass(frozen=True, slots=True)
class UnreadableItem:
    """A table item that is not a :class:`ClassificationItem` (written by hand, or damaged): its id, its
    source key when it has one, and why it cannot be read. Never its content."""

    picture_id: str
    bucket: str | None
    key: str | None
    reason: str

    @classmethod
    def of(cls, raw: dict[str, Any], error: Exception) -> UnreadableItem:
        def text(value: Any) -> str | None:
            return value.get("S") if isinstance(value, dict) and isinstance(value.get("S"), str) else None

        source = raw.get("source", {}).get("M", {}) if isinstance(raw.get("source"), dict) else {}
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        return cls(
            text(raw.get("pictureId")) or "?", text(source.get("bucket")), text(source.get("key")), reason
        )


@dataclass(slots=True)
class ScanPage:
    """One page of a scan: what could be read, what could not, and where to continue (``None``: done)."""

    next_key: dict[str, Any] | None
    items: list[ClassificationItem] = field(default_factory=list)
    unreadable: list[UnreadableItem] = field(default_factory=list)

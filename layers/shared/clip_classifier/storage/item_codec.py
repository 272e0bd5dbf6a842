"""The item's codec: :class:`ClassificationItem` ⇄ DynamoDB attribute values.

Versioned by the item's ``codec`` attribute. Codec 2 (written now) keeps the per-class figures
``probabilities`` and ``scores`` as lists in the order of ``classes``: each label is written once, not three
times, which with the int8 embedding (:mod:`.embedding_codec`) keeps an upload's item under 2,048 bytes,
2 write units instead of 3 (``bench/item_size.py``). Items without ``codec`` (written before) keep them as
maps of label → number, and read exactly as they did. Either way :class:`ClassificationItem` — and so the
API's JSON — has the maps.

Floats are written as ``Decimal`` built from the shortest string that round-trips the float32 value, so
boto3's strict decimal context never raises ``Inexact``/``Rounded``; ``None`` fields are left out; binary
attributes (the stored embedding) come back as ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from clip_classifier.storage import dynamo_values
from clip_classifier.storage.result_item import ClassificationItem


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
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


#: The item layout :func:`serialize` writes (the ``codec`` attribute); items without one are codec 1.
CODEC = 2
PER_CLASS = ("probabilities", "scores")


def stored_result(fields: dict[str, Any]) -> dict[str, Any]:
    """Result fields (by alias) as codec 2 stores them: per-class maps → lists in ``classes`` order, and
    ``codec`` set. Also what a rescore's ``UpdateItem`` writes, so a re-scored item is codec 2 as a whole."""
    classes = fields.get("classes")
    stored = dict(fields)
    for name in PER_CLASS:
        figures = fields.get(name)
        if figures is not None:
            if classes is None or list(figures) != list(classes):
                raise ValueError(f"{name} must be given for the item's classes, in their order")
            stored[name] = [figures[label] for label in classes]
    stored["codec"] = CODEC
    return stored


def _read_result(plain: dict[str, Any]) -> dict[str, Any]:
    codec = plain.pop("codec", 1)
    if codec == 1:
        return plain
    if codec != CODEC:
        raise ValueError(f"item codec {codec!r} is not one this version reads (1 or {CODEC})")
    classes = plain.get("classes")
    for name in PER_CLASS:
        figures = plain.get(name)
        if figures is not None:
            if not isinstance(figures, list) or not isinstance(classes, list) or len(figures) != len(classes):
                raise ValueError(f"{name} is not one number per class")
            plain[name] = dict(zip(classes, figures, strict=True))
    return plain


def serialize(record: ClassificationItem, codec: int = CODEC) -> dict[str, Any]:
    """The item's attribute values. ``codec=1`` writes the earlier layout (maps): how items stored before
    codec 2 look, for the tests and benchmarks that prove they still read."""
    plain = record.model_dump(by_alias=True, exclude_none=True)
    if codec == CODEC and record.status == "classified":
        plain = stored_result(plain)
    elif codec not in (1, CODEC):
        raise ValueError(f"item codec {codec} is not one this version writes (1 or {CODEC})")
    return {k: dynamo_values.serialize(v) for k, v in to_dynamo(plain).items()}


def deserialize(item: dict[str, Any]) -> ClassificationItem:
    plain = {k: from_dynamo(dynamo_values.deserialize(v)) for k, v in item.items()}
    return ClassificationItem.model_validate(_read_result(plain))


def to_attribute_value(value: Any) -> Any:
    """One value (a number, a map, a list) as a DynamoDB attribute value, for an update expression."""
    return dynamo_values.serialize(to_dynamo(value))


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

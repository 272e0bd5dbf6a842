"""Plain Python values ⇄ DynamoDB's typed attribute values, for the types this project stores.

``str`` ⇄ ``S``, ``int``/``Decimal`` → ``N`` (read back as ``Decimal``), ``bytes`` ⇄ ``B``, ``bool`` ⇄
``BOOL``, ``None`` ⇄ ``NULL``, lists ⇄ ``L``, dicts with string keys ⇄ ``M``. The rules are boto3's
``TypeSerializer``/``TypeDeserializer`` for these types (floats are refused: callers convert them to an exact
``Decimal`` first, see :mod:`.item_codec`); written here because importing boto3 for them costs a function's
cold start ~50 ms (boto3 and s3transfer), and the clients come from botocore alone (:mod:`clip_classifier.aws`).
Sets are not used by any item and are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def serialize(value: Any) -> dict[str, Any]:
    """One value as an attribute value, or ``TypeError`` naming what cannot be stored."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):  # before int: bool is an int
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | Decimal):
        number = Decimal(value)
        if not number.is_finite():
            raise TypeError(f"DynamoDB numbers are finite, not {value}")
        return {"N": str(number)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": bytes(value)}
    if isinstance(value, list | tuple):
        return {"L": [serialize(v) for v in value]}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("DynamoDB map keys are strings")
        return {"M": {k: serialize(v) for k, v in value.items()}}
    raise TypeError(f"{type(value).__name__} is not a DynamoDB value this project stores")


def deserialize(value: Mapping[str, Any]) -> Any:
    """One attribute value as a plain value (numbers as ``Decimal``), or ``TypeError`` for another type."""
    if len(value) != 1:
        raise TypeError(f"an attribute value has one type, not {sorted(value)}")
    ((kind, content),) = value.items()
    if kind == "S":
        return str(content)
    if kind == "N":
        return Decimal(content)
    if kind == "B":
        return bytes(content)
    if kind == "BOOL":
        return bool(content)
    if kind == "NULL":
        return None
    if kind == "L":
        return [deserialize(v) for v in content]
    if kind == "M":
        return {k: deserialize(v) for k, v in content.items()}
    raise TypeError(f"DynamoDB type {kind} is not one this project stores")

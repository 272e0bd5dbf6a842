"""The project's own attribute-value codec gives exactly what boto3's TypeSerializer/TypeDeserializer give
for every type the items use (the functions no longer import boto3 for them), and refuses the rest."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from clip_classifier.storage import dynamo_values

VALUES: list[Any] = [
    "text",
    "été 日本語",
    "",
    Decimal("0.08756916"),
    Decimal("-1E-45"),
    Decimal("12345678901234567890"),
    0,
    -7,
    True,
    False,
    None,
    b"\x02\x00\xff",
    b"",
    [Decimal("1"), "a", None, [True, {"k": b"v"}]],
    {"portrait": Decimal("0.5"), "nested": {"list": ["x", Decimal("2")]}, "empty": {}},
    [],
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_serialize_matches_boto3(value: Any) -> None:
    assert dynamo_values.serialize(value) == TypeSerializer().serialize(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Binary):
        return bytes(value)  # type: ignore[call-overload]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_deserialize_matches_boto3(value: Any) -> None:
    attribute = TypeSerializer().serialize(value)
    assert dynamo_values.deserialize(attribute) == _plain(TypeDeserializer().deserialize(attribute))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.5, "float is not a DynamoDB value"),
        (Decimal("NaN"), "finite"),
        ({1: "a"}, "map keys are strings"),
        ({"a", "b"}, "set is not a DynamoDB value"),
    ],
)
def test_what_items_never_hold_is_refused(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        dynamo_values.serialize(value)


def test_unknown_attribute_types_are_refused() -> None:
    with pytest.raises(TypeError, match="SS is not one this project stores"):
        dynamo_values.deserialize({"SS": ["a"]})
    with pytest.raises(TypeError, match="one type"):
        dynamo_values.deserialize({"S": "a", "N": "1"})

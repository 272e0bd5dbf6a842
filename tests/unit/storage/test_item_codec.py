"""The item's versioned codec: codec 2 (per-class lists, int8 embedding) is what is written and fits 2 write
units; codec 1 items (maps, float16 embedding) written before still read the same, on moto as in memory;
a rescore rewrites an old item as codec 2; what neither codec wrote is refused, never misread."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.cost_model import item_size, typical_item, write_units
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import CODEC, deserialize, serialize
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.conftest import TABLE

HEAD = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def stored_numbers(figures: dict[str, float] | None) -> dict[str, float]:
    """Numbers as DynamoDB keeps them: the shortest decimal of their float32 value."""
    return {label: float(str(np.float32(value))) for label, value in (figures or {}).items()}


def old_item(picture_id: str = "old.jpg") -> ClassificationItem:
    """An upload's item as the code before codec 2 wrote it: float16 embedding (serialized as codec 1)."""
    vector = np.random.default_rng(7).normal(size=HEAD.input_dim).astype(np.float32)
    stored, features = embedding_codec.round_trip(vector, "float16")
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(HEAD.predict(features)[0], head_version=HEAD.version),
        source=SourceInfo(type="s3", bucket="b", key=picture_id, etag="e1", version_id="v1"),
        embedder_version="a" * 64,
        embedding=stored,
        sequencer="0" * 24,
    )


def test_codec_2_keeps_per_class_figures_as_lists_in_class_order() -> None:
    item = typical_item(HEAD, embedding=True)
    raw = serialize(item)
    assert raw["codec"] == {"N": str(CODEC)}
    assert [v["N"] for v in raw["probabilities"]["L"]] == [
        str(np.float32(item.probabilities[c]))
        for c in item.classes or []  # type: ignore[index]
    ]
    assert "L" in raw["scores"] and len(raw["scores"]["L"]) == len(item.classes or [])
    read = deserialize(raw)
    assert read.probabilities == stored_numbers(item.probabilities)  # the maps come back: the API's JSON
    assert read.scores == stored_numbers(item.scores)  # keeps its shape
    assert read == deserialize(serialize(item, codec=1))  # the same item either codec gives


def test_an_upload_item_fits_two_write_units_with_room_for_a_persons_label() -> None:
    """The item sizes by DynamoDB's rules: codec 1 with a float16 embedding was 2,208 bytes (3 units)."""
    new = item_size(serialize(typical_item(HEAD, embedding=True)))
    before = typical_item(HEAD, embedding=True)
    vector = np.random.default_rng(0).normal(size=HEAD.input_dim).astype(np.float32)
    before.embedding = embedding_codec.encode(vector, "float16")
    old = item_size(serialize(before, codec=1))
    assert write_units(old) == 3 and write_units(new) == 2
    assert new <= 2048 - 300  # a person's label, who and when, and a review key still fit in 2 units


def test_failed_and_deleted_items_carry_no_codec() -> None:
    failed = ClassificationItem.failed(
        "f.jpg", code="image_corrupt", message="m", source=SourceInfo(type="s3")
    )
    raw = serialize(failed)
    assert "codec" not in raw and deserialize(raw) == failed


def test_a_codec_1_item_reads_as_it_did_and_its_embedding_scores_the_same() -> None:
    item = old_item()
    raw = serialize(item, codec=1)
    assert "codec" not in raw and "M" in raw["probabilities"] and len(raw["embedding"]["B"]) == 1032
    read = deserialize(raw)
    assert read == deserialize(serialize(item))  # the same item as codec 2 gives
    assert read.probabilities == stored_numbers(item.probabilities)
    features = embedding_codec.head_input(read.embedding or b"", HEAD.input_dim)
    assert HEAD.predict(features)[0].probabilities == tuple(
        item.probabilities[c]  # type: ignore[index]
        for c in item.classes or []
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw.update(codec={"N": "3"}), "item codec 3 is not one this version reads"),
        (lambda raw: raw["probabilities"]["L"].pop(), "probabilities is not one number per class"),
        (lambda raw: raw.update(scores={"M": {"cat": {"N": "1"}}}), "scores is not one number per class"),
    ],
)
def test_what_no_codec_wrote_is_refused(damage: Any, message: str) -> None:
    raw = serialize(typical_item(HEAD, embedding=True))
    damage(raw)
    with pytest.raises(ValueError, match=message):
        deserialize(raw)


def test_on_dynamodb_an_old_item_reads_and_a_rescore_rewrites_it_as_codec_2(dynamodb: Any) -> None:
    item = old_item("mixed.jpg")
    dynamodb.put_item(TableName=TABLE, Item=serialize(item, codec=1))
    store = ResultsStore(TABLE, dynamodb)
    assert store.get("mixed.jpg") == deserialize(serialize(item))
    features = embedding_codec.head_input(item.embedding or b"", HEAD.input_dim)
    result = ResultFields.from_prediction(HEAD.predict(features)[0], head_version="b" * 64)
    assert store.update_result(item, result, updated_at="2026-12-04T00:00:00.000Z")
    raw = dynamodb.get_item(TableName=TABLE, Key={"pictureId": {"S": "mixed.jpg"}})["Item"]
    assert raw["codec"] == {"N": str(CODEC)} and "L" in raw["probabilities"]
    assert raw["embedding"]["B"] == item.embedding  # the old float16 embedding stays, and still reads
    rescored = store.get("mixed.jpg")
    assert rescored is not None and rescored.probabilities == stored_numbers(result.probabilities)
    assert rescored.head_version == "b" * 64 and rescored.embedding == item.embedding

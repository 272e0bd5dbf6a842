"""bench/cost_model.py: DynamoDB's item-size rules, the stored embedding's cost, and the table it prints."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.cost_model import (
    IMAGES,
    PRICES,
    Inputs,
    attribute_size,
    costs,
    item_size,
    main,
    typical_item,
    write_units,
)
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage.item_codec import serialize
from clip_local.paths import EXAMPLE_WEIGHTS


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "abc"}, 3),
        ({"S": "été"}, 5),  # UTF-8 bytes
        ({"N": "123"}, 3),  # (3 significant digits + 1) // 2 + 1
        ({"N": "0.0012300"}, 3),  # leading and trailing zeros are trimmed
        ({"N": "-0.08224134"}, 5),
        ({"B": b"\0" * 10}, 10),
        ({"BOOL": True}, 1),
        ({"L": [{"S": "ab"}, {"N": "1"}]}, 3 + (2 + 1) + (2 + 1)),  # 3 bytes, plus 1 per element
        ({"M": {"a": {"S": "x"}}}, 3 + (1 + 1 + 1)),
    ],
)
def test_attribute_sizes_follow_dynamodbs_rules(value: dict[str, object], size: int) -> None:
    assert attribute_size(value) == size


def test_the_embedding_adds_its_bytes_and_a_write_unit() -> None:
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    with_embedding = item_size(serialize(typical_item(head, embedding=True)))
    without = item_size(serialize(typical_item(head, embedding=False)))
    assert with_embedding - without == len("embedding") + 521
    assert (write_units(without), write_units(with_embedding)) == (
        1,
        2,
    )  # measured 1,010 B and 1,540 B (with the review margin)
    before = serialize(typical_item(head, embedding=True, layout="float16"), codec=1)
    assert write_units(item_size(before)) == 3  # codec 1, float16: 2,208 B
    assert write_units(1024) == 1 and write_units(1025) == 2


def test_costs_add_up_from_the_prices() -> None:
    inputs = Inputs(
        memory_mb=1769,
        image_ms=60,
        rescore_ms=0.07,
        put_ms=5,
        item_bytes=1540,
        item_bytes_without_embedding=1010,
    )
    table = costs(inputs)
    assert table["event path"]["DynamoDB writes"] == pytest.approx(IMAGES * 2 * PRICES["dynamodb_write_unit"])
    assert table["event path"]["S3 GET"] == pytest.approx(IMAGES * PRICES["s3_get"])
    assert table["event path"]["Lambda duration"] == pytest.approx(
        IMAGES * 1769 / 1024 * 0.080 * PRICES["lambda_gb_second"]  # 60 ms + one GET + one write
    )
    arm = costs(replace(inputs, architecture="arm64"))["event path"]["Lambda duration"]
    assert arm == pytest.approx(table["event path"]["Lambda duration"] * 0.8, rel=1e-4)
    before = costs(replace(inputs, s3_requests=2))["event path"]
    assert before["S3 HEAD + GET"] == pytest.approx(2 * table["event path"]["S3 GET"])
    assert all(v >= 0 for terms in table.values() for v in terms.values())
    assert sum(table["backfill"].values()) > sum(
        table["event path"].values()
    )  # listing, HEAD and Step Functions on top


def test_the_command_measures_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--s3-ms", "10"]) == 0
    out = capsys.readouterr().out
    for path in ("event path", "backfill", "rescore", "evaluation"):
        assert f"{path:<12} total (dominant: " in out
    assert "1540 B = 2 write units with the embedding" in out
    assert "item 2208 B = 3 write units → 1540 B = 2" in out
    assert out.splitlines()[0].startswith("event path, $ per 1M images: before")

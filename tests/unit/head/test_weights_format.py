from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clip_classifier.exceptions import WeightsFormatError, WeightsIntegrityError
from clip_classifier.head.weights_format import parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.helpers import encode, rehash, small_doc


def test_example_weights_parse_and_describe_the_production_head() -> None:
    doc = parse_weights(EXAMPLE_WEIGHTS.read_bytes())
    assert len(doc.classes) == 12
    assert doc.input_dim == 512
    shapes = [w.shape for w, _ in doc.arrays()]
    assert shapes == [(256, 512), (128, 256), (12, 128)]
    assert [layer.type for layer in doc.layers] == ["linear", "relu", "linear", "relu", "linear", "sigmoid"]
    assert "EXAMPLE" in doc.provenance.training["note"]


def _broken(mutate) -> bytes:  # type: ignore[no-untyped-def]
    doc = small_doc()
    mutate(doc)
    rehash(doc)
    return encode(doc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["layers"][2].update(weight=[[1.0, 2.0], [3.0, 4.0]]),
            "layers[2] (linear 2): weight is 2x2 but the previous layer outputs 3",
        ),
        (
            lambda d: d["layers"][0].update(weight=[[1.0, 2.0, 3.0]] * 3),
            "layers[0] (linear 1): weight is 3x3 but input_dim is 4",
        ),
        (lambda d: d.update(classes=["a", "b", "c"]), "classes has 3 labels but the last layer outputs 2"),
        (
            lambda d: d["layers"][0].update(bias=[0.0]),
            "layers[0] (linear 1): bias has 1 values but weight has 3 rows",
        ),
        (lambda d: d["layers"][0].update(weight=[[1.0] * 4, [1.0] * 3, [1.0] * 4]), "rectangular"),
        (lambda d: d.update(classes=["a", "a"]), 'classes[1] "a" repeats classes[0] "a"'),
        (
            lambda d: d["layers"].__setitem__(3, {"type": "softmax"}),
            "needs a final 'sigmoid' layer, found 'softmax'",
        ),
        (
            lambda d: d["layers"].insert(1, {"type": "sigmoid"}),
            "'sigmoid' is only allowed as the final layer",
        ),
        (lambda d: d["layers"][1].update(type="tanh"), "layers[1]"),
        (lambda d: d.update(input_normalization="l1"), "input_normalization"),
        (lambda d: d.update(format_version=2), "format_version"),
        (
            lambda d: d["layers"][0]["weight"][0].__setitem__(0, "0.1"),
            "layers[0].weight[0][0] is not a number",
        ),
        (lambda d: d.pop("classes"), "classes: Field required"),
        (lambda d: d.update(unexpected=1), "unexpected: Extra inputs are not permitted"),
    ],
)
def test_invalid_documents_fail_with_a_specific_message(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WeightsFormatError) as info:
        parse_weights(_broken(mutate), location="s3://b/head.json")
    assert message in str(info.value)
    assert "s3://b/head.json" in str(info.value)


def test_not_json_is_a_format_error() -> None:
    with pytest.raises(WeightsFormatError, match="invalid weights file x.json"):
        parse_weights(b"{not json", location="x.json")


def test_changed_numbers_break_the_declared_sha256() -> None:
    doc = small_doc()
    doc["layers"][0]["weight"][0][0] = 0.11  # content changes, declared hash does not
    with pytest.raises(WeightsIntegrityError, match="content sha256 is [0-9a-f]{64} but the file declares"):
        parse_weights(encode(doc))


def test_hash_ignores_formatting_and_provenance() -> None:
    doc = small_doc()
    other = copy.deepcopy(doc)
    other["provenance"]["training"] = {"epochs": 3}
    pretty = json.dumps(other, indent=2).encode()
    assert parse_weights(pretty).content_sha256 == parse_weights(encode(doc)).content_sha256


def test_logistic_regression_head_is_expressible() -> None:
    doc = small_doc(
        head_type="logreg",
        layers=[
            {"type": "linear", "weight": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], "bias": [0.0, 0.0]},
            {"type": "softmax"},
        ],
        output="softmax",
    )
    assert parse_weights(encode(doc)).head_type == "logreg"


@settings(max_examples=60, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=True) | st.text(max_size=5) | st.integers(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_escapes_as_anything_but_a_weights_error(value: object) -> None:
    with pytest.raises((WeightsFormatError, WeightsIntegrityError)):
        parse_weights(json.dumps(value).encode())


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["classes", "input_dim", "layers", "output", "content_sha256", "provenance"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=3)),
)
def test_any_corrupted_field_is_rejected(field: str, value: object) -> None:
    doc = small_doc()
    doc[field] = value
    with pytest.raises((WeightsFormatError, WeightsIntegrityError)):
        parse_weights(encode(doc))

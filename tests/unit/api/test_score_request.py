"""The one validation step of score requests: every rule, with the field path it reports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from clip_classifier.api.models import ScoreRequest
from clip_classifier.api.score_request import validate_score_request
from clip_classifier.exceptions import InvalidFeaturesError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS

V = [0.1] * 512


@pytest.fixture(scope="module")
def head() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def check(head: Head, body: dict[str, Any], max_items: int = 100) -> Any:
    return validate_score_request(ScoreRequest.model_validate(body), head, max_items=max_items)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"features": V[:-1]}, "features", "features must have 512 numbers, got 511"),
        ({"features": [*V, 0.1]}, "features", "features must have 512 numbers, got 513"),
        ({"features": [0.0] * 512}, "features", "features must not be all zeros"),
        ({"features": [-0.0] * 512}, "features", "features must not be all zeros"),
        ({"items": [{"features": V}] * 3}, "items", "items must have at most 2 entries, got 3"),
        ({"items": [{"features": V}, {"features": V[:5]}]}, "items[1].features", "got 5"),
        (
            {"items": [{"features": V}, {"features": [0.0] * 512}]},
            "items[1].features",
            "items[1].features must not be all zeros",
        ),
        (
            {"items": [{"pictureId": "a", "features": V}, {"pictureId": "a", "features": V}]},
            "items[1].pictureId",
            "items[1].pictureId 'a' appears more than once in the batch",
        ),
    ],
)
def test_each_rule_names_the_field(head: Head, body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidFeaturesError) as info:
        check(head, body, max_items=2)
    assert info.value.field == field
    assert message in info.value.message


def test_a_valid_batch_becomes_one_float32_matrix_in_order(head: Head) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 512))
    batch = check(
        head,
        {
            "items": [
                {"pictureId": "a", "features": rows[0].tolist()},
                {"features": rows[1].tolist()},
                {"pictureId": "c", "features": rows[2].tolist()},
            ]
        },
    )
    assert batch.is_batch and batch.picture_ids == ["a", None, "c"]
    assert batch.features.dtype == np.float32 and batch.features.shape == (3, 512)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    assert np.abs(batch.features - unit).max() <= 1e-7  # L2-normalised in float64, then float32


@pytest.mark.parametrize("scale", [1e-320, 1e-300, 1e-23, 1e-6, 1.0, 1e21, 1e300, 1.7e308 / 30])
def test_any_finite_scale_gives_the_unit_vectors_answer(head: Head, scale: float) -> None:
    """No overflow to inf/NaN, no underflow to 'all zeros': the head sees the direction only."""
    x = np.random.default_rng(5).uniform(-30, 30, size=512)
    got = check(head, {"features": (x * scale).tolist()}).features
    unit = x / np.linalg.norm(x)
    assert np.isfinite(got).all()
    # Denormal inputs keep ~10 significant bits less; still the same direction.
    assert np.abs(got[0] - unit).max() <= (1e-3 if scale < 1e-307 else 1e-7)
    reference = head.predict(unit[None, :].astype(np.float32))[0].probabilities
    assert np.abs(np.asarray(head.predict(got)[0].probabilities) - reference).max() <= (
        1e-4 if scale < 1e-307 else 1e-6
    )


def test_a_head_without_l2_normalisation_refuses_what_float32_cannot_hold() -> None:
    from tests.helpers import encode, small_doc

    plain = Head(parse_weights(encode(small_doc())))  # input_normalization "none", 4 inputs
    with pytest.raises(InvalidFeaturesError) as info:
        check(plain, {"items": [{"features": [1, 2, 3, 4]}, {"features": [1, 2, -1e39, 4]}]})
    assert info.value.field == "items[1].features[2]"
    assert "outside the float32 range (±3.4e38)" in info.value.message
    assert check(plain, {"features": [0, 0, 0, 0]}).features.tolist() == [[0, 0, 0, 0]]  # no norm needed


def test_a_single_vector_is_a_one_row_batch(head: Head) -> None:
    batch = check(head, {"pictureId": "p", "features": V})
    assert not batch.is_batch and batch.picture_ids == ["p"] and batch.features.shape == (1, 512)

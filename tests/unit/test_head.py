from __future__ import annotations

import numpy as np
import pytest

from clip_classifier.exceptions import InvalidFeaturesError
from clip_classifier.head import Head
from clip_classifier.weights_format import parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.helpers import GOLDEN_HEAD, encode, read_json, small_doc

# The golden outputs were computed by torch.nn (weights/export_mlp_weights.py --golden-out).
PARITY_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def head() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def test_matches_the_committed_torch_reference(head: Head) -> None:
    golden = read_json(GOLDEN_HEAD)
    assert golden["weights_content_sha256"] == head.version
    scores, probs = head.forward(head.as_batch(golden["inputs"]))
    assert np.abs(scores - np.asarray(golden["scores"])).max() <= PARITY_TOLERANCE
    assert np.abs(probs - np.asarray(golden["probabilities"])).max() <= PARITY_TOLERANCE


def test_probabilities_sum_to_one_and_single_equals_batch(head: Head) -> None:
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(64, 512)).astype(np.float32)
    _, probs = head.forward(head.as_batch(batch))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    single = head.predict(batch[7].tolist())[0]
    assert np.allclose(single.probabilities, probs[7], atol=1e-7)
    assert single.top_label == head.classes[int(np.argmax(probs[7]))]
    assert single.top_k(3)[0] == (single.top_label, single.top_probability)


def test_l2_normalization_makes_scale_irrelevant(head: Head) -> None:
    x = np.random.default_rng(2).normal(size=512)
    a = head.predict(x)[0].probabilities
    b = head.predict(x * 37.5)[0].probabilities
    assert np.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([0.1] * 511, "features must have 512 numbers, got 511"),
        ([0.1] * 513, "features must have 512 numbers, got 513"),
        ([[[0.1] * 512]], "features must be a vector or an N×512 batch"),
        ([0.1] * 17 + [float("nan")] + [0.1] * 494, "features[17] is not a finite number"),
        ([0.1] * 3 + [float("inf")] + [0.1] * 508, "features[3] is not a finite number"),
        ([0.0] * 512, "must not be all zeros"),
        (["x"] * 512, "features must be numbers"),
    ],
)
def test_bad_vectors_are_rejected_specifically(head: Head, features: object, message: str) -> None:
    with pytest.raises(InvalidFeaturesError) as info:
        head.predict(features)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_batch_errors_name_the_row(head: Head) -> None:
    batch = np.ones((3, 512), dtype=np.float32)
    batch[2, 5] = np.nan
    with pytest.raises(InvalidFeaturesError, match=r"features\[2\]\[5\] is not a finite number"):
        head.as_batch(batch)


def test_small_head_matches_a_hand_computed_forward() -> None:
    doc = small_doc()
    head = Head(parse_weights(encode(doc)))
    x = np.array([1.0, 2.0, -1.0, 0.5])
    w1, b1 = np.array(doc["layers"][0]["weight"]), np.array(doc["layers"][0]["bias"])
    w2, b2 = np.array(doc["layers"][2]["weight"]), np.array(doc["layers"][2]["bias"])
    hidden = np.maximum(w1 @ x + b1, 0)
    scores = 1 / (1 + np.exp(-(w2 @ hidden + b2)))
    got = head.predict(x)[0]
    assert np.allclose(got.scores, scores, atol=1e-6)
    assert np.allclose(got.probabilities, scores / scores.sum(), atol=1e-6)


def test_softmax_head_outputs_a_distribution() -> None:
    doc = small_doc(
        head_type="logreg",
        layers=[
            {"type": "linear", "weight": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], "bias": [0.0, 0.0]},
            {"type": "softmax"},
        ],
        output="softmax",
    )
    head = Head(parse_weights(encode(doc)))
    got = head.predict([3.0, 1.0, 0.0, 0.0])[0]
    expected = np.exp([3.0, 1.0]) / np.exp([3.0, 1.0]).sum()
    assert np.allclose(got.probabilities, expected, atol=1e-6)
    assert got.scores == got.probabilities


def test_extreme_logits_stay_finite(head: Head) -> None:
    doc = small_doc()
    doc["layers"][2]["bias"] = [500.0, -500.0]
    from tests.helpers import rehash

    rehash(doc)
    extreme = Head(parse_weights(encode(doc)))
    got = extreme.predict([1.0, 1.0, 1.0, 1.0])[0]
    assert all(np.isfinite(got.probabilities))
    assert got.top_label == "a"

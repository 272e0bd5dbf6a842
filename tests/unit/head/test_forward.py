from __future__ import annotations

import numpy as np
import pytest

from clip_classifier.exceptions import HeadInputError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
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
    scores, probs = head.forward(np.asarray(golden["inputs"], dtype=np.float32))
    assert np.abs(scores - np.asarray(golden["scores"])).max() <= PARITY_TOLERANCE
    assert np.abs(probs - np.asarray(golden["probabilities"])).max() <= PARITY_TOLERANCE


def test_probabilities_sum_to_one_and_single_equals_batch(head: Head) -> None:
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(64, 512)).astype(np.float32)
    _, probs = head.forward(batch)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    single = head.predict(batch[7:8])[0]
    assert np.allclose(single.probabilities, probs[7], atol=1e-7)
    assert single.top_label == head.classes[int(np.argmax(probs[7]))]
    assert single.top_probability == max(single.probabilities)


def test_l2_normalization_makes_scale_irrelevant(head: Head) -> None:
    x = np.random.default_rng(2).normal(size=(1, 512)).astype(np.float32)
    a = head.predict(x)[0].probabilities
    b = head.predict(x * np.float32(37.5))[0].probabilities
    assert np.allclose(a, b, atol=1e-6)


def test_the_head_refuses_what_it_cannot_compute(head: Head) -> None:
    """Pure math: request validation is score_request's job; the head only guards its own preconditions,
    with a classifier error (so an upload's other records are still processed), never a bare ValueError."""
    with pytest.raises(HeadInputError, match=r"expected a \[N, 512\] batch"):
        head.forward(np.ones((1, 511), dtype=np.float32))
    with pytest.raises(HeadInputError, match="all-zero"):
        head.forward(np.zeros((1, 512), dtype=np.float32))
    with pytest.raises(HeadInputError, match="all-zero"):
        head.forward(np.vstack([np.ones(512), np.zeros(512)]).astype(np.float32))


def test_small_head_matches_a_hand_computed_forward() -> None:
    doc = small_doc()
    head = Head(parse_weights(encode(doc)))
    x = np.array([1.0, 2.0, -1.0, 0.5])
    batch = x[None, :].astype(np.float32)
    w1, b1 = np.array(doc["layers"][0]["weight"]), np.array(doc["layers"][0]["bias"])
    w2, b2 = np.array(doc["layers"][2]["weight"]), np.array(doc["layers"][2]["bias"])
    hidden = np.maximum(w1 @ x + b1, 0)
    scores = 1 / (1 + np.exp(-(w2 @ hidden + b2)))
    got = head.predict(batch)[0]
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
    got = head.predict(np.array([[3.0, 1.0, 0.0, 0.0]], dtype=np.float32))[0]
    expected = np.exp([3.0, 1.0]) / np.exp([3.0, 1.0]).sum()
    assert np.allclose(got.probabilities, expected, atol=1e-6)
    assert got.scores == got.probabilities


def test_extreme_logits_stay_finite(head: Head) -> None:
    doc = small_doc()
    doc["layers"][2]["bias"] = [500.0, -500.0]
    from tests.helpers import rehash

    rehash(doc)
    extreme = Head(parse_weights(encode(doc)))
    got = extreme.predict(np.ones((1, 4), dtype=np.float32))[0]
    assert all(np.isfinite(got.probabilities))
    assert got.top_label == "a"

"""Heads that cannot poison the functions: every case of ``tests/corpus/heads.py`` is refused where it
enters with its weights error or served finitely; a property test of extreme heads × adversarial inputs; a
seeded mutation fuzz of head files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clip_classifier.exceptions import WeightsError
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.corpus.heads import HeadCase, head_cases
from tests.helpers import mutate, rehash, small_doc

CASES = head_cases()
F32_MAX = float(np.finfo(np.float32).max)


def assert_finite_distribution(head: Head, batch: np.ndarray) -> None:
    for prediction in head.predict(batch.astype(np.float32)):
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
        assert np.isfinite(probabilities).all() and np.isfinite(prediction.scores).all()
        assert (probabilities >= 0).all() and abs(probabilities.sum() - 1.0) <= 1e-5
        fields = ResultFields.from_prediction(prediction, head_version=head.version)
        json.dumps(fields.model_dump(by_alias=True), allow_nan=False)  # strict JSON: no NaN/Infinity


def adversarial(dim: int) -> np.ndarray:
    """Unit, huge, tiny, subnormal, one-hot and sign-alternating vectors within float32."""
    rng = np.random.default_rng(0)
    rows = [rng.normal(size=dim) * s for s in (1.0, 1e-38, 1e-30, 1e30, 3e38)]
    rows += [np.eye(dim)[0] * F32_MAX, np.where(np.arange(dim) % 2, F32_MAX, -F32_MAX), np.full(dim, 1e-45)]
    return np.clip(np.asarray(rows), -F32_MAX, F32_MAX)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_head_case_is_refused_by_name_or_served_finitely(case: HeadCase) -> None:
    raw = case.make()
    if case.outcome == "served":
        head = Head(parse_weights(raw, location="s3://b/head.json"))
        assert_finite_distribution(head, adversarial(head.input_dim))
        return
    with pytest.raises(WeightsError) as info:
        parse_weights(raw, location="s3://b/head.json")
    assert info.value.code == case.outcome and case.message in info.value.message, info.value.message
    assert "s3://b/head.json" in info.value.message


def test_the_fallback_equals_the_exact_sigmoid_normalisation() -> None:
    """Where float32 gives 0/0 (every sigmoid under 1e-45), the result is the limit: softmax of the logits."""
    doc = small_doc()
    doc["layers"][2]["bias"] = [-1e4, -1e4 + 2.0]
    head = Head(parse_weights(json.dumps(rehash(doc))))
    x = np.asarray([[0.0, 0.0, 0.0, 1e-3]], np.float32)
    p = np.asarray(head.predict(x)[0].probabilities)
    h = np.maximum(
        np.asarray(doc["layers"][0]["weight"]) @ x[0].astype(np.float64) + doc["layers"][0]["bias"], 0
    )
    z = np.asarray(doc["layers"][2]["weight"]) @ h + np.asarray(doc["layers"][2]["bias"])
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert np.allclose(p, expected, atol=1e-6)


def test_ordinary_inputs_never_take_the_fallback() -> None:
    """The float32 fast path still serves every ordinary vector (the fallback is only for the extremes)."""
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    calls = []
    original = head._exact
    head._exact = lambda x: calls.append(1) or original(x)  # type: ignore[method-assign]
    head.predict(np.random.default_rng(0).normal(size=(64, 512)).astype(np.float32))
    assert calls == []


EXTREMES = st.sampled_from([0.0, 5e-45, 1e-30, 1e-3, 1.0, 1e3, 1e10, 1e30, 1e38, F32_MAX])


@st.composite
def extreme_heads(draw: st.DrawFn) -> bytes:
    dim = draw(st.integers(2, 6))
    widths = [dim, *draw(st.lists(st.integers(1, 5), max_size=3)), draw(st.integers(2, 5))]
    layers: list[dict[str, object]] = []
    for i in range(len(widths) - 1):
        shape = (widths[i + 1], widths[i])
        magnitude = np.asarray(
            draw(st.lists(EXTREMES, min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
        )
        signs = np.asarray(
            draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=magnitude.size, max_size=magnitude.size))
        )
        bias = [draw(EXTREMES) * draw(st.sampled_from([-1.0, 1.0])) for _ in range(shape[0])]
        layers += [
            {"type": "linear", "weight": (magnitude * signs).reshape(shape).tolist(), "bias": bias},
            {"type": "relu"},
        ]
    output = draw(st.sampled_from(["sigmoid_normalized", "softmax"]))
    layers[-1] = {"type": "sigmoid" if output == "sigmoid_normalized" else "softmax"}
    doc = small_doc(classes=[f"c{i}" for i in range(widths[-1])], input_dim=dim, layers=layers, output=output,
                    input_normalization=draw(st.sampled_from(["l2", "none"])))  # fmt: skip
    return json.dumps(rehash(doc)).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=extreme_heads(), scale=EXTREMES, seed=st.integers(0, 2**16))
def test_any_valid_head_gives_a_finite_distribution_on_any_finite_input(
    raw: bytes, scale: float, seed: int
) -> None:
    try:
        head = Head(parse_weights(raw))
    except WeightsError:
        assume(False)  # refused at load: never served
        return
    rng = np.random.default_rng(seed)
    batch = np.vstack([rng.normal(size=(3, head.input_dim)) * scale, adversarial(head.input_dim)])
    batch = np.clip(batch, -F32_MAX, F32_MAX).astype(np.float32)
    if head.input_normalization == "l2":  # a zero vector (after float32 rounding) has no direction to score
        batch = batch[np.abs(batch).max(axis=1) > 0]
    assert_finite_distribution(head, batch)


TOKENS = (
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e39",
    b"1e400",
    b"9" * 300,
    b"true",
    b"null",
    b'"x"',
    b"[]",
    b"{}",
    b"-0",
    b"5e-324",
)


@pytest.mark.parametrize("seed", range(3))
def test_mutated_head_files_are_a_weights_error_or_a_finite_head(seed: int) -> None:
    """A bounded, seeded fuzz of the example head's text: no mutant escapes as another exception, and any
    mutant that still loads scores finitely."""
    rng = random.Random(seed)
    source = json.dumps(small_doc()).encode()
    outcomes = {"refused": 0, "served": 0}
    for _ in range(150):
        mutant = mutate(source, rng, header=len(source), tokens=TOKENS)
        try:
            head = Head(parse_weights(mutant))
        except WeightsError:
            outcomes["refused"] += 1
            continue
        outcomes["served"] += 1
        assert_finite_distribution(head, adversarial(head.input_dim))
    assert outcomes["refused"] > 100

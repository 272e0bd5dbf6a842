"""The API corpus through the real handler (moto in-process), plus property-based bodies."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.conftest import ScoreApi, scan_count
from tests.corpus.api import ApiCase, api_cases
from tests.helpers import predict_one

CASES = api_cases()
HEAD = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.case for c in CASES])
def test_api_case(api: ScoreApi, dynamodb: Any, case: ApiCase) -> None:
    status, body = api.post(None, raw=case.raw, content_type=case.content_type)
    assert status == case.status, body
    messages = [body["message"], *(e["message"] for e in body.get("errors", []))]
    assert any(case.message in m for m in messages), messages
    assert "Traceback" not in json.dumps(body)
    assert scan_count(dynamodb) == 0, "a rejected request stored something"


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({"features": json_values}),
        st.fixed_dictionaries(
            {"items": st.lists(st.fixed_dictionaries({"features": json_values}), max_size=3)}
        ),
    )
)
def test_any_json_body_gets_a_clean_4xx_and_stores_nothing(api: ScoreApi, dynamodb: Any, body: Any) -> None:
    status, answer = api.post(None, raw=json.dumps(body).encode())
    assert 400 <= status < 500, answer
    assert set(answer) >= {"code", "message"}
    assert scan_count(dynamodb) == 0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)
@given(
    # A seeded base vector scaled and perturbed: any scale and sign pattern, never all zeros.
    vector=st.builds(
        lambda seed, scale, spikes: [
            float(v) for v in (np.random.default_rng(seed).normal(size=512) * scale + spikes)
        ],
        st.integers(0, 2**32 - 1),
        st.floats(min_value=1e-6, max_value=1e6),
        st.floats(min_value=-1e3, max_value=1e3),
    ),
    picture_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,30}", fullmatch=True),
)
def test_any_valid_vector_scores_to_a_distribution_and_is_stored(
    api: ScoreApi, dynamodb: Any, vector: list[float], picture_id: str
) -> None:
    status, answer = api.post(None, raw=json.dumps({"pictureId": picture_id, "features": vector}).encode())
    assert status == 200, answer
    assert abs(sum(answer["probabilities"].values()) - 1) <= 1e-6
    assert answer["stored"] is True
    # The answer itself: the head applied to the normalised input.
    x = np.asarray(vector)
    expected = predict_one(HEAD, x / np.linalg.norm(x)).probabilities
    assert np.abs(np.array([answer["probabilities"][c] for c in HEAD.classes]) - expected).max() <= 1e-6


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    # Any decimal exponent a JSON number can carry as a finite float64, denormals included.
    exponent=st.integers(min_value=-320, max_value=305),
)
def test_any_scale_gives_the_normalised_vectors_answer_as_valid_json(
    api: ScoreApi, dynamodb: Any, seed: int, exponent: int
) -> None:
    x = np.random.default_rng(seed).uniform(-1, 1, size=512)
    raw = json.dumps({"features": [float(v) * 10.0**exponent for v in x]}, allow_nan=False).encode()
    response = api.handler(
        build_event(
            "POST", Route.of("POST", "/v1/scores"), "/v1/scores", {"content-type": "application/json"}, raw
        ),
        LambdaContext(),
    )
    answer = json.loads(response["body"], parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert response["statusCode"] == 200, answer
    expected = predict_one(HEAD, x / np.linalg.norm(x)).probabilities
    got = np.array([answer["probabilities"][c] for c in HEAD.classes])
    # Below ~1e-308 the inputs themselves are denormal and keep fewer significant bits.
    assert np.abs(got - expected).max() <= (1e-4 if exponent < -300 else 1e-6)

"""The ambiguity guard in the runtime: a head that carries one flags every result, in the API response, the
stored item and GET; a head without one behaves as before; the thresholds are part of the head version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import document_sha256, parse_weights
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.conftest import MODEL_BUCKET, WEIGHTS_KEY, ScoreApi


def guarded(min_top: float, min_margin: float) -> dict[str, Any]:
    doc = json.loads(EXAMPLE_WEIGHTS.read_text())
    doc["ambiguity"] = {
        "min_top_probability": min_top,
        "min_margin": min_margin,
        "fitted": {"target_precision": 0.9},
    }
    doc["content_sha256"] = document_sha256(parse_weights_unchecked(doc))
    return doc


def parse_weights_unchecked(doc: dict[str, Any]) -> Any:
    from clip_classifier.head.weights_format import WeightsDocument

    return WeightsDocument.model_validate(doc)


def test_flags_follow_the_thresholds_and_the_version_covers_them() -> None:
    plain = parse_weights(EXAMPLE_WEIGHTS.read_bytes())
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(50, plain.input_dim)).astype(np.float32)
    _, probabilities = Head(plain).forward(batch)
    ordered = np.sort(probabilities, axis=1)
    # Thresholds inside the batch's own range, so both answers occur.
    min_top = float(np.quantile(ordered[:, -1], 0.3))
    min_margin = float(np.quantile(ordered[:, -1] - ordered[:, -2], 0.3))
    doc = parse_weights(json.dumps(guarded(min_top, min_margin)))
    assert doc.content_sha256 != plain.content_sha256  # thresholds change results, so the version
    head = Head(doc)
    predictions = head.predict(batch)
    expected = (ordered[:, -1] < min_top) | (ordered[:, -1] - ordered[:, -2] < min_margin)
    assert [p.ambiguous for p in predictions] == expected.tolist()
    assert expected.any() and not expected.all()  # the case exercises both answers
    top = predictions[0].top(3)
    assert [label for label, _ in top] == [head.classes[i] for i in np.argsort(-probabilities[0])[:3]]
    assert all(p.ambiguous is None for p in Head(plain).predict(batch))


def test_a_stale_thresholds_edit_is_refused_as_corrupt() -> None:
    doc = guarded(0.2, 0.05)
    doc["ambiguity"]["min_margin"] = 0.0  # edited without a new version
    with pytest.raises(Exception, match="corrupt"):
        parse_weights(json.dumps(doc))


@pytest.mark.parametrize("guard", [True, False])
def test_api_response_stored_item_and_get_carry_the_flag_and_top_three(
    s3: Any, make_score_api: Callable[..., ScoreApi], guard: bool
) -> None:
    if guard:
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=json.dumps(guarded(0.99, 0.5)).encode())
    api = make_score_api()
    features = np.random.default_rng(1).normal(size=512).round(4).tolist()
    status, body = api.post({"pictureId": "p1", "features": features})
    assert status == 200, body
    assert body["top"][0]["label"] == body["topLabel"] and len(body["top"]) == 3
    assert body["top"][0]["probability"] == body["topProbability"]
    if guard:
        assert body["ambiguous"] is True  # 0.99 top probability is out of reach for 12 classes here
    else:
        assert body.get("ambiguous") is None  # no guard, no verdict (null, like the other optional fields)
    stored = api.function.service.get("p1")
    assert stored.ambiguous == body.get("ambiguous") and stored.top is not None
    assert [t.label for t in stored.top] == [t["label"] for t in body["top"]]

"""The scoring function end to end in-process: API Gateway events → real handler → moto DynamoDB/S3."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from clip_classifier.head import Head
from clip_classifier.weights_format import parse_weights
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.events import all_events, render, sample_features
from clip_local.handlers import load_function
from clip_local.paths import EVENTS_DIR, EXAMPLE_WEIGHTS, REPO_ROOT
from tests.conftest import scan_count
from tests.helpers import load_event

pytestmark = pytest.mark.usefixtures("api_env")


def invoke(event: dict[str, Any]) -> tuple[int, Any]:
    response = load_function("score_features").lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def post(body: Any, *, raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"content-type": content_type} if content_type else {}
    return invoke(build_event("POST", Route.of("POST", "/v1/scores"), "/v1/scores", headers, data))


@pytest.fixture(scope="module")
def reference() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def test_committed_event_files_are_current() -> None:
    for name, event in all_events().items():
        assert (EVENTS_DIR / name).read_text(encoding="utf-8") == render(event), name


def test_committed_openapi_document_is_current() -> None:
    generated = json.loads(load_function("score_features").openapi_document())
    committed = json.loads((REPO_ROOT / "infra" / "openapi.json").read_text())
    assert generated == committed, "run: python -m clip_local.openapi"


def test_single_vector_is_scored_stored_and_read_back(dynamodb: Any, reference: Head) -> None:
    status, body = invoke(load_event("api_score_single.json"))
    assert status == 200
    assert body["pictureId"] == "sample-001" and body["stored"] is True
    probs = np.array(list(body["probabilities"].values()))
    assert abs(probs.sum() - 1) <= 1e-6
    expected = reference.predict(sample_features(1))[0]
    assert np.abs(probs - np.array(expected.probabilities)).max() <= 1e-6
    assert body["topLabel"] == expected.top_label and body["headVersion"] == reference.version

    status, stored = invoke(load_event("api_get_classification.json"))
    assert status == 200
    assert stored["status"] == "classified" and stored["source"]["type"] == "api"
    assert stored["probabilities"] == pytest.approx(body["probabilities"], abs=1e-7)


def test_batch_scores_all_and_stores_only_entries_with_an_id(dynamodb: Any, reference: Head) -> None:
    status, body = invoke(load_event("api_score_batch.json"))
    assert status == 200
    assert [i["pictureId"] for i in body["items"]] == ["sample-101", "sample-102", None]
    assert [i["stored"] for i in body["items"]] == [True, True, False]
    for item, seed in zip(body["items"], (101, 102, 103), strict=True):
        expected = reference.predict(sample_features(seed))[0].probabilities
        assert np.abs(np.array(list(item["probabilities"].values())) - expected).max() <= 1e-6
    assert scan_count(dynamodb) == 2


def test_model_endpoint_describes_the_head(reference: Head) -> None:
    status, body = invoke(load_event("api_get_model.json"))
    assert status == 200
    assert body["classes"] == list(reference.classes)
    assert body["inputDim"] == 512 and body["inputNormalization"] == "l2"
    assert body["headVersion"] == reference.version and body["maxBatchItems"] == 100


def test_unknown_picture_is_404(dynamodb: Any) -> None:
    event = load_event("api_get_classification.json")
    status, body = invoke(event)
    assert status == 404 and body["code"] == "not_found" and "sample-001" in body["message"]


def test_wrong_length_event_is_422_naming_the_field(dynamodb: Any) -> None:
    status, body = invoke(load_event("api_score_wrong_length.json"))
    assert status == 422
    assert body["message"] == "features must have 512 numbers, got 511"
    assert body["errors"][0]["field"] == "features"


V = sample_features(7)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"pictureId": "p1", "features": V[:-1]}, 422, "features must have 512 numbers, got 511"),
        ({"pictureId": "p1", "features": [*V, 0.1]}, 422, "features must have 512 numbers, got 513"),
        ({"pictureId": "p1", "features": V[:17] + ["NaN"] + V[18:]}, 422, "features[17] must be a number"),
        ({"pictureId": "p1", "features": V[:3] + [True] + V[4:]}, 422, "features[3] must be a number"),
        ({"pictureId": "p1", "features": V[:3] + [None] + V[4:]}, 422, "features[3] must be a number"),
        ({"pictureId": "p1", "features": [V]}, 422, "features[0] must be a number"),
        ({"pictureId": "p1", "features": "0.1,0.2"}, 422, "features must be an array"),
        ({"pictureId": "p1", "features": []}, 422, "features must have at least 1 entries"),
        ({"pictureId": "p1"}, 422, "send exactly one of 'features' (one vector) or 'items' (a batch)"),
        ({"features": V, "items": [{"features": V}]}, 422, "send exactly one of"),
        (
            {"pictureId": "p1", "items": [{"features": V}]},
            422,
            "'pictureId' goes inside each entry of 'items'",
        ),
        ({"features": V, "extra": 1}, 422, "extra is not an allowed field"),
        ({"pictureId": "bad/id", "features": V}, 422, "pictureId has characters that are not allowed"),
        ({"pictureId": "", "features": V}, 422, "pictureId has characters that are not allowed"),
        ({"pictureId": "x" * 201, "features": V}, 422, "pictureId has characters that are not allowed"),
        ({"pictureId": 42, "features": V}, 422, "pictureId must be a string"),
        ({"items": []}, 422, "items must have at least 1 entries"),
        (
            {"items": [{"features": V}, {"features": V[:5]}]},
            422,
            "items[1].features must have 512 numbers, got 5",
        ),
        ({"items": [{"features": V}] * 101}, 422, "items must have at most 100 entries, got 101"),
        (
            {"items": [{"pictureId": "a", "features": V}, {"pictureId": "a", "features": V}]},
            422,
            "items[1].pictureId 'a' appears more than once",
        ),
        ({"items": [{"features": V, "nested": {}}]}, 422, "items[0].nested is not an allowed field"),
        ([V], 422, "body"),
        ({"features": [0.0] * 512}, 422, "must not be all zeros"),
    ],
)
def test_invalid_bodies_get_a_specific_4xx_and_store_nothing(
    dynamodb: Any, body: Any, status: int, message: str
) -> None:
    got_status, got = post(body)
    assert got_status == status, got
    assert message in got["message"] or any(message in e["message"] for e in got["errors"]), got
    assert scan_count(dynamodb) == 0


def test_nan_and_infinity_literals_are_rejected(dynamodb: Any) -> None:
    raw = json.dumps({"pictureId": "p", "features": V[:9] + [float("nan")] + V[10:]}).encode()
    assert b"NaN" in raw
    status, body = post(None, raw=raw)
    assert status == 422 and body["message"] == "features[9] is not a finite number"
    raw = json.dumps({"pictureId": "p", "features": [float("-inf")] + V[1:]}).encode()
    status, body = post(None, raw=raw)
    assert status == 422 and body["message"] == "features[0] is not a finite number"
    assert scan_count(dynamodb) == 0


def test_malformed_json_is_400(dynamodb: Any) -> None:
    status, body = post(None, raw=b'{"features": [0.1, ')
    assert status == 400 and body["code"] == "malformed_json"


def test_body_over_the_limit_is_413(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from clip_classifier import runtime

    monkeypatch.setenv("MAX_BODY_BYTES", "4096")
    runtime.reset()
    status, body = post({"features": V})
    assert status == 413 and "limit is 4096" in body["message"]
    assert scan_count(dynamodb) == 0


def test_wrong_content_type_is_415(dynamodb: Any) -> None:
    status, body = post({"features": V}, content_type="text/plain")
    assert status == 415 and body["code"] == "unsupported_media_type"


def test_missing_weights_is_a_clear_500_without_internals(
    dynamodb: Any, s3: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from clip_classifier import runtime

    monkeypatch.setenv("WEIGHTS_URI", "s3://models-bucket/missing.json")
    runtime.reset()
    status, body = post({"pictureId": "p", "features": V})
    assert status == 500
    assert body == {
        "code": "weights_not_found",
        "message": "the classifier is misconfigured; see the logs",
        "errors": [],
    }
    assert any(
        getattr(r, "error", "") == "weights object s3://models-bucket/missing.json does not exist"
        for r in caplog.records
    )
    assert scan_count(dynamodb) == 0


def test_throttled_table_is_503_so_clients_retry(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from clip_classifier import runtime
    from tests.helpers import FaultyClient, client_error

    store = runtime.results_store()
    store._client = FaultyClient(dynamodb, put_item=[client_error("ThrottlingException", 400)])  # type: ignore[assignment]
    status, body = post({"pictureId": "p", "features": V})
    assert status == 503 and body["code"] == "results_store_unavailable"


def test_feature_vectors_never_reach_the_logs(
    dynamodb: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    marker = 0.123456789
    features = [marker] + V[1:]
    post({"pictureId": "p", "features": features})
    post({"pictureId": "p", "features": features[:-1]})
    post({"features": [*features[:5], float("nan")]})
    out = capsys.readouterr()
    records = " ".join(str(r.__dict__) for r in caplog.records)
    assert "0.123456" not in out.out + out.err + records

"""The scoring function end to end in-process: API Gateway events → real handler → moto DynamoDB/S3."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.model.manifest import load_manifest
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.events import all_events, render, sample_features
from clip_local.handlers import load_function
from clip_local.paths import EVENTS_DIR, EXAMPLE_WEIGHTS, OPENAPI_DOCUMENT, TINY_MODEL_DIR
from tests.conftest import ScoreApi, scan_count
from tests.helpers import load_event, predict_one


@pytest.fixture(scope="module")
def reference() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


def test_committed_event_files_are_current() -> None:
    for name, event in all_events().items():
        assert (EVENTS_DIR / name).read_text(encoding="utf-8") == render(event), name


def test_committed_openapi_document_is_current() -> None:
    generated = json.loads(load_function("score_features").openapi_document())
    committed = json.loads(OPENAPI_DOCUMENT.read_text())
    assert generated == committed, "run: python -m clip_local.openapi"


def test_single_vector_is_scored_stored_and_read_back(api: ScoreApi, dynamodb: Any, reference: Head) -> None:
    status, body = api.invoke(load_event("api_score_single.json"))
    assert status == 200
    assert body["pictureId"] == "sample-001" and body["stored"] is True
    probs = np.array(list(body["probabilities"].values()))
    assert abs(probs.sum() - 1) <= 1e-6
    expected = predict_one(reference, sample_features(1))
    assert np.abs(probs - np.array(expected.probabilities)).max() <= 1e-6
    assert body["topLabel"] == expected.top_label and body["headVersion"] == reference.version

    status, stored = api.invoke(load_event("api_get_classification.json"))
    assert status == 200
    assert stored["status"] == "classified" and stored["source"]["type"] == "api"
    assert stored["probabilities"] == pytest.approx(body["probabilities"], abs=1e-7)


def test_batch_scores_all_and_stores_only_entries_with_an_id(
    api: ScoreApi, dynamodb: Any, reference: Head
) -> None:
    status, body = api.invoke(load_event("api_score_batch.json"))
    assert status == 200
    assert [i["pictureId"] for i in body["items"]] == ["sample-101", "sample-102", None]
    assert [i["stored"] for i in body["items"]] == [True, True, False]
    for item, seed in zip(body["items"], (101, 102, 103), strict=True):
        expected = predict_one(reference, sample_features(seed)).probabilities
        assert np.abs(np.array(list(item["probabilities"].values())) - expected).max() <= 1e-6
    assert scan_count(dynamodb) == 2


def test_model_endpoint_describes_the_head(api: ScoreApi, reference: Head) -> None:
    status, body = api.invoke(load_event("api_get_model.json"))
    assert status == 200
    assert body["classes"] == list(reference.classes)
    assert body["inputDim"] == 512 and body["inputNormalization"] == "l2"
    assert body["headVersion"] == reference.version and body["maxBatchItems"] == 100


def test_model_endpoint_names_the_embedder_features_must_come_from(api: ScoreApi) -> None:
    """From EMBEDDER_MANIFEST, the manifest ``sam build`` copies from the model the image ships."""
    status, body = api.invoke(load_event("api_get_model.json"))
    manifest = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json")
    assert status == 200
    assert body["embedder"] == {
        "modelId": manifest.model_id,
        "revision": manifest.revision,
        "randomInit": True,
        "modelSha256": manifest.model_sha256,
        "outputDim": 512,
        "quantization": "int8-dynamic",
        "transform": {
            "shortestEdge": manifest.transform.shortest_edge,
            "cropHeight": manifest.transform.crop_height,
            "cropWidth": manifest.transform.crop_width,
            "resample": manifest.transform.resample,
            "rescaleFactor": manifest.transform.rescale_factor,
            "imageMean": list(manifest.transform.image_mean),
            "imageStd": list(manifest.transform.image_std),
        },
    }


def test_stored_results_hide_the_storage_internals(api: ScoreApi, dynamodb: Any) -> None:
    """The table item has the S3 ordering sequencer; the API's answer is its own contract."""
    from clip_classifier.ingest.s3_event import normalize_sequencer
    from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

    item = ClassificationItem.failed(
        "seq-1",
        code="image_corrupt",
        message="broken",
        source=SourceInfo(type="s3", bucket="b", key="uploads/seq-1"),
        sequencer=normalize_sequencer("0A"),
    ).model_copy(update={"expires_at": 123})
    assert api.function.service.store.put_if_newer(item)
    assert dynamodb.get_item(TableName="results", Key={"pictureId": {"S": "seq-1"}})["Item"]["sequencer"]
    status, body = api.invoke(
        load_event("api_get_classification.json")
        | {"pathParameters": {"pictureId": "seq-1"}, "path": "/v1/classifications/seq-1"}
    )
    assert status == 200, body
    assert body["status"] == "failed" and body["error"] == {"code": "image_corrupt", "message": "broken"}
    assert "sequencer" not in body and "expiresAt" not in body
    assert {k: v for k, v in body["source"].items() if v is not None} == {
        "type": "s3",
        "bucket": "b",
        "key": "uploads/seq-1",
    }


def test_unknown_picture_is_404(api: ScoreApi, dynamodb: Any) -> None:
    event = load_event("api_get_classification.json")
    status, body = api.invoke(event)
    assert status == 404 and body["code"] == "not_found" and "sample-001" in body["message"]


def test_wrong_length_event_is_422_naming_the_field(api: ScoreApi, dynamodb: Any) -> None:
    status, body = api.invoke(load_event("api_score_wrong_length.json"))
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
        ({"features": V, "extra": 1}, 422, "extra is not a field of this request"),
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
        ({"items": [{"features": V, "nested": {}}]}, 422, "items[0].nested is not a field of this request"),
        ([V], 422, "body"),
        ({"features": [0.0] * 512}, 422, "must not be all zeros"),
    ],
)
def test_invalid_bodies_get_a_specific_4xx_and_store_nothing(
    api: ScoreApi, dynamodb: Any, body: Any, status: int, message: str
) -> None:
    got_status, got = api.post(body)
    assert got_status == status, got
    assert message in got["message"] or any(message in e["message"] for e in got["errors"]), got
    assert scan_count(dynamodb) == 0


def test_nan_and_infinity_literals_are_rejected(api: ScoreApi, dynamodb: Any) -> None:
    raw = json.dumps({"pictureId": "p", "features": V[:9] + [float("nan")] + V[10:]}).encode()
    assert b"NaN" in raw
    status, body = api.post(None, raw=raw)
    assert status == 422 and body["message"] == "features[9] is not a finite number"
    raw = json.dumps({"pictureId": "p", "features": [float("-inf")] + V[1:]}).encode()
    status, body = api.post(None, raw=raw)
    assert status == 422 and body["message"] == "features[0] is not a finite number"
    assert scan_count(dynamodb) == 0


def test_malformed_json_is_400(api: ScoreApi, dynamodb: Any) -> None:
    status, body = api.post(None, raw=b'{"features": [0.1, ')
    assert status == 400 and body["code"] == "malformed_json"


def test_body_over_the_limit_is_413(make_score_api: Callable[..., ScoreApi], dynamodb: Any) -> None:
    api = make_score_api(MAX_BODY_BYTES="4096")
    status, body = api.post({"features": V})
    assert status == 413 and "limit is 4096" in body["message"]
    assert scan_count(dynamodb) == 0


def test_wrong_content_type_is_415(api: ScoreApi, dynamodb: Any) -> None:
    status, body = api.post({"features": V}, content_type="text/plain")
    assert status == 415 and body["code"] == "unsupported_media_type"


def test_missing_weights_is_a_clear_500_without_internals(
    make_score_api: Callable[..., ScoreApi], dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = make_score_api(WEIGHTS_URI="s3://models-bucket/missing.json")
    status, body = api.post({"pictureId": "p", "features": V})
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


def test_throttled_table_is_503_so_clients_retry(api: ScoreApi, dynamodb: Any) -> None:
    from tests.helpers import FaultyClient, client_error

    store = api.function.service.store
    store.client = FaultyClient(dynamodb, put_item=[client_error("ThrottlingException", 400)])  # type: ignore[assignment]
    status, body = api.post({"pictureId": "p", "features": V})
    assert status == 503 and body["code"] == "results_store_unavailable"


def test_feature_vectors_never_reach_the_logs(
    api: ScoreApi, dynamodb: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    marker = 0.123456789
    features = [marker] + V[1:]
    api.post({"pictureId": "p", "features": features})
    api.post({"pictureId": "p", "features": features[:-1]})
    api.post({"features": [*features[:5], float("nan")]})
    out = capsys.readouterr()
    records = " ".join(str(r.__dict__) for r in caplog.records)
    assert "0.123456" not in out.out + out.err + records


def test_content_type_is_case_insensitive_with_parameters(api: ScoreApi, dynamodb: Any) -> None:
    for header, value in [
        ("Content-Type", "Application/JSON; charset=UTF-8"),
        ("CONTENT-TYPE", "application/json"),
    ]:
        event = build_event(
            "POST",
            Route.of("POST", "/v1/scores"),
            "/v1/scores",
            {header: value},
            json.dumps({"features": V}).encode(),
        )
        status, body = api.invoke(event)
        assert status == 200, (header, value, body)


def test_the_body_limit_counts_bytes_not_characters(
    make_score_api: Callable[..., ScoreApi], dynamodb: Any
) -> None:
    api = make_score_api(MAX_BODY_BYTES="4096")
    body = json.dumps({"features": V[:3], "note": "é" * 2100}, ensure_ascii=False)
    assert len(body) < 4096 < len(body.encode())
    status, answer = api.post(None, raw=body.encode())
    assert status == 413 and answer["message"] == f"body is {len(body.encode())} bytes; the limit is 4096"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "the request body is nested too deeply"),
        (b'{"features": [' + b"9" * 5000 + b"]}", "is beyond the 64-bit float range"),
        (b'{"features": [1e400]}', "the number 1e400 is beyond the 64-bit float range (±1.8e308)"),
        (b'{"features": [-' + b"1" * 400 + b".5]}", "is beyond the 64-bit float range"),
    ],
)
def test_bounded_json_parsing_gives_a_400_naming_the_problem(
    api: ScoreApi, dynamodb: Any, raw: bytes, message: str
) -> None:
    status, body = api.post(None, raw=raw)
    assert status == 400 and body["code"] == "malformed_json" and message in body["message"], body
    assert scan_count(dynamodb) == 0


def test_a_big_integer_literal_is_just_a_number(api: ScoreApi, dynamodb: Any) -> None:
    status, body = api.post(None, raw=json.dumps({"features": [10**30] + V[1:]}).encode())
    assert status == 200, body


def test_a_batch_is_all_or_nothing_and_names_the_refused_item(api: ScoreApi, dynamodb: Any) -> None:
    from clip_classifier.ingest.s3_event import normalize_sequencer
    from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

    uploaded = ClassificationItem.failed(
        "up-1",
        code="image_corrupt",
        message="x",
        source=SourceInfo(type="s3"),
        sequencer=normalize_sequencer("1"),
    )
    assert api.function.service.store.put_if_newer(uploaded)
    status, body = api.post(
        {
            "items": [
                {"pictureId": "new-1", "features": V},
                {"pictureId": "up-1", "features": V},
                {"features": V},
            ]
        }
    )
    assert status == 409 and body["code"] == "picture_owned_by_upload", body
    assert body["errors"] == [{"field": "items[1].pictureId", "message": body["message"]}]
    assert scan_count(dynamodb) == 1  # only the upload's item: new-1 was not stored either
    status, body = api.post({"pictureId": "up-1", "features": V})
    assert status == 409 and body["errors"][0]["field"] == "pictureId"


def test_a_percent_encoded_picture_id_finds_its_item(api: ScoreApi, dynamodb: Any) -> None:
    picture_id = "a:b@c+d=e;f,g$h&i"
    assert api.post({"pictureId": picture_id, "features": V})[0] == 200
    encoded = quote(picture_id, safe="-_.!~*'()")  # what encodeURIComponent produces
    assert encoded != picture_id
    event = build_event(
        "GET", Route.of("GET", "/v1/classifications/{pictureId}"), f"/v1/classifications/{encoded}", {}, b""
    )
    assert event["pathParameters"] == {"pictureId": encoded}  # API Gateway REST leaves it encoded
    status, body = api.invoke(event)
    assert status == 200 and body["pictureId"] == picture_id


def cors_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = {**(response.get("headers") or {})}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key] = ", ".join(values)
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control")}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("OPTIONS", "/v1/scores", {}, b"", 204),
        ("POST", "/v1/scores", {"content-type": "text/plain"}, b"x", 415),
        ("POST", "/v1/scores", {"content-type": "application/json"}, b"x" * 5000, 413),
        ("POST", "/v1/scores", {"content-type": "application/json"}, b"{", 400),
        ("POST", "/v1/scores", {"content-type": "application/json"}, b'{"features": [1]}', 422),
        ("GET", "/v1/model", {}, b"", 200),
        ("GET", "/v1/classifications/{pictureId}", {}, b"", 404),
    ],
)
def test_every_answer_carries_the_requesting_origin_when_allowed(
    make_score_api: Callable[..., ScoreApi],
    dynamodb: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
) -> None:
    api = make_score_api(CORS_ALLOW_ORIGINS="https://a.example, https://b.example", MAX_BODY_BYTES="4096")
    raw_path = path.replace("{pictureId}", "nope")
    for origin, allowed in [
        ("https://b.example", True),
        ("https://a.example", True),
        ("https://evil.example", False),
    ]:
        event = build_event(method, Route.of(method, path), raw_path, {**headers, "origin": origin}, body)
        response = api.handler(event, LambdaContext())
        assert response["statusCode"] == status, response
        got = cors_headers(response)
        if allowed:
            assert got["access-control-allow-origin"] == origin  # never the joined list
        else:
            assert "access-control-allow-origin" not in got


def test_a_preflight_without_cors_origins_is_405_not_a_server_error(api: ScoreApi, dynamodb: Any) -> None:
    event = build_event(
        "OPTIONS", Route.of("OPTIONS", "/v1/model"), "/v1/model", {"origin": "https://a.example"}, b""
    )
    status, body = api.invoke(event)
    assert status == 405 and body["code"] == "method_not_allowed"


def _get(api: ScoreApi, picture_id: str, query: str = "") -> tuple[int, Any]:
    route = Route.of("GET", "/v1/classifications/{pictureId}")
    return api.invoke(build_event("GET", route, f"/v1/classifications/{picture_id}", {}, b"", query=query))


def _upload_item(picture_id: str, embedding: bytes, head: Head, embedder: str | None = None) -> Any:
    from clip_classifier.head.result_fields import ResultFields
    from clip_classifier.model.manifest import load_manifest
    from clip_classifier.storage import embedding_codec
    from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

    served = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").model_sha256
    dim = embedding_codec.dimension(embedding)
    features = embedding_codec.head_input(embedding, dim)
    prediction = head.predict(
        features if dim == head.input_dim else np.ones((1, head.input_dim), np.float32)
    )[0]
    return ClassificationItem.classified(
        picture_id,
        ResultFields.from_prediction(prediction, head_version=head.version),
        source=SourceInfo(type="s3", bucket="b", key=f"uploads/{picture_id}", etag="e", version_id="v"),
        embedder_version=embedder or served,
        embedding=embedding,
        sequencer="0" * 39 + "1",
    )


def test_the_stored_embedding_is_returned_only_when_asked_and_scores_the_same(
    api: ScoreApi, reference: Head
) -> None:
    from clip_classifier.storage import embedding_codec

    raw = np.random.default_rng(5).normal(size=512).astype(np.float32)
    item = _upload_item("up-emb", embedding_codec.encode(raw), reference)
    api.function.service.store.put_if_newer(item)
    status, plain = _get(api, "up-emb")
    assert status == 200 and plain.get("embedding") is None
    status, body = _get(api, "up-emb", "include=embedding")
    assert status == 200 and len(body["embedding"]) == 512
    expected = embedding_codec.head_input(item.embedding, 512)[0]
    assert np.array_equal(np.asarray(body["embedding"], np.float32), expected)
    # POSTed back, the features give the stored probabilities (as any client's features would).
    status, scored = api.post({"features": body["embedding"]})
    assert status == 200
    assert max(abs(scored["probabilities"][c] - body["probabilities"][c]) for c in reference.classes) <= 1e-6
    assert _get(api, "up-emb", "include=everything")[0] == 422


def test_a_damaged_stored_embedding_is_a_clear_server_error(api: ScoreApi, reference: Head) -> None:
    from clip_classifier.storage import embedding_codec

    good = embedding_codec.encode(np.ones(512, np.float32))
    item = _upload_item("up-bad", good, reference).model_copy(update={"embedding": good[:-5] + b"\0" * 5})
    api.function.service.store.put_if_newer(item)
    status, body = _get(api, "up-bad", "include=embedding")
    assert status == 500 and body["code"] == "embedding_corrupt"
    assert "pictureId 'up-bad'" in body["message"] and "CRC-32" in body["message"]
    assert _get(api, "up-bad")[0] == 200  # the result itself stays readable


def test_an_embedding_from_another_model_is_refused_as_the_rescore_refuses_it(
    api: ScoreApi, reference: Head
) -> None:
    from clip_classifier.storage import embedding_codec

    other = _upload_item("up-other", embedding_codec.encode(np.ones(512, np.float32)), reference, "f" * 64)
    wide = _upload_item("up-wide", embedding_codec.encode(np.ones(768, np.float32)), reference)
    for item in (other, wide):
        api.function.service.store.put_if_newer(item)
        status, body = _get(api, item.picture_id, "include=embedding")
        assert status == 409 and body["code"] == "embedding_other_model"
        assert (
            body["errors"][0]["field"] == "include" and "re-classify the image (backfill)" in body["message"]
        )
        assert _get(api, item.picture_id)[0] == 200  # the result itself stays readable


def test_a_persons_label_is_shown_beside_the_machines_with_the_final_label(
    api: ScoreApi, reference: Head
) -> None:
    from clip_classifier.storage import embedding_codec

    stored = embedding_codec.encode(np.ones(512, np.float32))
    store = api.function.service.store
    store.put_if_newer(_upload_item("up-labelled", stored, reference))
    store.put_if_newer(_upload_item("up-plain", stored, reference))
    person = next(
        c for c in reference.classes if c != reference.predict(np.ones((1, 512), np.float32))[0].top_label
    )
    assert store.set_label(
        "up-labelled", person, by="arn:aws:iam::123456789012:user/ops", at="2026-12-04T06:00:00.000Z"
    )  # type: ignore[attr-defined]
    status, body = _get(api, "up-labelled")
    assert status == 200
    assert body["personLabel"] == person and body["finalLabel"] == person and body["topLabel"] != person
    assert body["labeledAt"] == "2026-12-04T06:00:00.000Z"
    assert "labeledBy" not in body and "123456789012" not in json.dumps(body)  # who stays in the table
    status, plain = _get(api, "up-plain")
    assert status == 200 and plain["finalLabel"] == plain["topLabel"] and plain["personLabel"] is None

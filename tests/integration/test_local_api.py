"""The README's local stack, talked to over real HTTP (moto server on 127.0.0.1, local API)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from clip_local.events import sample_features
from clip_local.stack import LocalStack, local_stack

KEY = "integration-key"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with local_stack(api_key=KEY) as running:
        yield running


def call(
    stack: LocalStack, method: str, path: str, body: Any = None, key: str | None = KEY
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{stack.api.url}/api{path}", data=data, method=method)
    if key:
        request.add_header("x-api-key", key)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_score_then_read_back_over_http(stack: LocalStack) -> None:
    status, scored = call(
        stack, "POST", "/v1/scores", {"pictureId": "http-1", "features": sample_features(5)}
    )
    assert status == 200
    assert abs(sum(scored["probabilities"].values()) - 1) <= 1e-6
    status, stored = call(stack, "GET", "/v1/classifications/http-1")
    assert status == 200 and stored["topLabel"] == scored["topLabel"]
    assert stored["headVersion"] == scored["headVersion"]


def test_the_api_key_is_required(stack: LocalStack) -> None:
    for key in (None, "wrong"):
        status, body = call(stack, "GET", "/v1/model", key=key)
        assert status == 403 and body["code"] == "invalid_api_key"
        assert body["message"] == "the x-api-key header is missing or is not a key of this API"
    status, model = call(stack, "GET", "/v1/model")
    assert status == 200 and len(model["classes"]) == 12


def test_unknown_routes_answer_like_api_gateway(stack: LocalStack) -> None:
    for method, path in (("GET", "/v1/nothing-here"), ("GET", "/v1/scores"), ("DELETE", "/v1/model")):
        status, body = call(stack, method, path)
        assert status == 404 and body["code"] == "no_route" and "POST /v1/scores" in body["message"]


def test_bad_request_over_http(stack: LocalStack) -> None:
    status, body = call(stack, "POST", "/v1/scores", {"features": [1.0, 2.0]})
    assert status == 422 and body["message"] == "features must have 512 numbers, got 2"
    assert call(stack, "GET", "/v1/classifications/never-stored")[0] == 404


def test_weights_are_served_through_the_s3_cache(stack: LocalStack) -> None:
    cache = stack.score.function().service.weights
    assert cache.uri == stack.weights_uri and cache.downloads == 1


def test_the_api_key_never_reaches_the_logs(
    stack: LocalStack, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    call(stack, "POST", "/v1/scores", {"pictureId": "log-1", "features": sample_features(9)})
    call(stack, "POST", "/v1/scores", {"features": [1.0]})
    call(stack, "GET", "/v1/classifications/nope")
    out = "".join(capfd.readouterr()) + " ".join(str(r.__dict__) for r in caplog.records)
    assert KEY not in out
    assert f"{sample_features(9)[0]}" not in out


def fetch(stack: LocalStack, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{stack.api.url}{path}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_the_browser_demo_is_served_on_the_apis_origin_and_nothing_else(stack: LocalStack) -> None:
    status, headers, body = fetch(stack, "/")
    assert (
        status == 200
        and b"<title>CLIP classifier" in body
        and headers["Content-Type"].startswith("text/html")
    )
    # Cross-origin isolated, so onnxruntime-web may use threads.
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    status, headers, body = fetch(stack, "/model/manifest.json")
    assert (
        status == 200
        and json.loads(body)["model_sha256"]
        == json.loads((stack.model_dir / "manifest.json").read_text())["model_sha256"]
    )
    status, headers, body = fetch(stack, "/model/model.onnx")
    assert status == 200 and body == (stack.model_dir / "model.onnx").read_bytes()
    status, headers, _ = fetch(stack, "/src/preprocess.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    # Nothing outside the mounts, nothing but page files, and the API's answer for the rest.
    for path in (
        "/src/../../template.yaml",
        "/src/%2e%2e/%2e%2e/pyproject.toml",
        "/model/../../../../etc/passwd",
        "/demo/",
        "/README.md",
    ):
        status, _, body = fetch(stack, path)
        assert status == 404 and b'"no_route"' in body, path

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from clip_classifier.aws import AwsClients
from clip_classifier.settings import RescoreSettings, ScoreSettings, UploadSettings, load_settings
from clip_classifier.wiring import (
    BackfillFunction,
    RescoreFunction,
    ScoreFunction,
    UploadFunction,
    build_backfill_function,
    build_rescore_function,
    build_score_function,
    build_upload_function,
)
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.handlers import load_function
from clip_local.moto_server import DUMMY_SECRET, REGION
from clip_local.paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from clip_local.template import create_table, function_environment, load_template

TABLE = "results"
MODEL_BUCKET = "models-bucket"
WEIGHTS_KEY = "heads/head.json"
TINY_INT8 = TINY_MODEL_DIR / "int8"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy credentials and no real endpoint, for in-process moto (``mock_aws``)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, DUMMY_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ClipClassifierTests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "clip-classifier")
    yield


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    return client


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=MODEL_BUCKET)
    return client


@pytest.fixture
def weights_uri(s3: Any) -> str:
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=EXAMPLE_WEIGHTS.read_bytes())
    return f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}"


def function_env(logical_id: str, **overrides: str) -> dict[str, str]:
    """A function's environment as template.yaml gives it, with the stack's references filled in."""
    return {**function_environment(load_template(), logical_id), **overrides}


class ScoreApi:
    """The scoring function built directly (as its cold start does) and called with API Gateway events."""

    def __init__(self, function: ScoreFunction) -> None:
        self.function = function
        self.handler = load_function("score_features").create_handler(function)

    def invoke(self, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else None

    def post(
        self, body: Any, *, raw: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"content-type": content_type} if content_type else {}
        return self.invoke(build_event("POST", Route.of("POST", "/v1/scores"), "/v1/scores", headers, data))


@pytest.fixture
def make_score_api(dynamodb: Any, weights_uri: str, tmp_path: Path) -> Callable[..., ScoreApi]:
    """A factory: ``make_score_api(MAX_BODY_BYTES="4096")`` overrides environment variables."""

    def make(**overrides: str) -> ScoreApi:
        stack = {
            "RESULTS_TABLE": TABLE,
            "WEIGHTS_URI": weights_uri,
            "CACHE_DIR": str(tmp_path / "cache"),
            "EMBEDDER_MANIFEST": str(TINY_INT8 / "manifest.json"),
        }
        env = function_env("ScoreFeaturesFunction", **{**stack, **overrides})
        return ScoreApi(build_score_function(load_settings(ScoreSettings, env), AwsClients.create()))

    return make


@pytest.fixture
def api(make_score_api: Callable[..., ScoreApi]) -> ScoreApi:
    return make_score_api()


def build_upload(tmp_path: Path, **env: str) -> UploadFunction:
    """The upload function built directly from the template's environment plus ``env``."""
    stack = {
        "RESULTS_TABLE": TABLE,
        "CACHE_DIR": str(tmp_path / "cache"),
        "MODEL_PATH": str(TINY_INT8 / "model.onnx"),
    }
    values = function_env("ClassifyUploadFunction", **{**stack, **env})
    return build_upload_function(load_settings(UploadSettings, values), AwsClients.create())


def build_backfill(tmp_path: Path, **env: str) -> BackfillFunction:
    """The backfill's batch function built directly from the template's environment plus ``env``."""
    stack = {
        "RESULTS_TABLE": TABLE,
        "CACHE_DIR": str(tmp_path / "backfill-cache"),
        "MODEL_PATH": str(TINY_INT8 / "model.onnx"),
    }
    values = function_env("BackfillBatchFunction", **{**stack, **env})
    return build_backfill_function(load_settings(UploadSettings, values), AwsClients.create())


def build_rescore(tmp_path: Path, **env: str) -> RescoreFunction:
    """The rescore function built directly from the template's environment plus ``env``."""
    stack = {
        "RESULTS_TABLE": TABLE,
        "CACHE_DIR": str(tmp_path / "rescore-cache"),
        "EMBEDDER_MANIFEST": str(TINY_INT8 / "manifest.json"),
    }
    values = function_env("RescoreResultsFunction", **{**stack, **env})
    return build_rescore_function(load_settings(RescoreSettings, values), AwsClients.create())


def scan_count(client: Any, table: str = TABLE) -> int:
    return int(client.scan(TableName=table, Select="COUNT")["Count"])

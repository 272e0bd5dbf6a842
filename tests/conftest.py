from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from clip_classifier import runtime
from clip_local.moto_server import LOCAL_ENV
from clip_local.paths import EXAMPLE_WEIGHTS
from clip_local.template import create_table

TABLE = "results"
MODEL_BUCKET = "models-bucket"
WEIGHTS_KEY = "heads/head.json"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Dummy credentials, no real endpoint, a private cache dir and fresh singletons for every test."""
    for key, value in LOCAL_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ClipClassifierTests")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "clip-classifier")
    runtime.reset()
    yield
    runtime.reset()


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


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, dynamodb: Any, weights_uri: str) -> None:
    """The environment template.yaml gives the scoring function, against moto."""
    monkeypatch.setenv("RESULTS_TABLE", TABLE)
    monkeypatch.setenv("WEIGHTS_URI", weights_uri)
    runtime.reset()


def scan_count(client: Any, table: str = TABLE) -> int:
    return int(client.scan(TableName=table, Select="COUNT")["Count"])

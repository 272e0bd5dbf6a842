"""The whole local stack in one context manager: moto + resources from template.yaml + the local API."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from clip_classifier import runtime

from .apigw import LocalApi
from .handlers import load_function
from .moto_server import moto_server
from .paths import EXAMPLE_WEIGHTS
from .template import api_routes, create_table, load_template

TABLE = "clip-results"
MODEL_BUCKET = "clip-local-models"
WEIGHTS_KEY = "heads/example_head.json"


@dataclass
class LocalStack:
    endpoint: str
    table: str
    weights_uri: str
    api: LocalApi
    api_key: str


@contextmanager
def local_stack(
    *,
    api_port: int = 0,
    moto_port: int | None = None,
    weights: Path = EXAMPLE_WEIGHTS,
    api_key: str | None = None,
) -> Iterator[LocalStack]:
    with moto_server(moto_port) as endpoint, tempfile.TemporaryDirectory(prefix="clip-local-") as cache:
        dynamodb = boto3.client("dynamodb")
        s3 = boto3.client("s3")
        create_table(dynamodb, TABLE)
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=weights.read_bytes())
        weights_uri = f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}"
        env = {
            "RESULTS_TABLE": TABLE,
            "WEIGHTS_URI": weights_uri,
            "CACHE_DIR": cache,
            "POWERTOOLS_SERVICE_NAME": "clip-classifier",
            "POWERTOOLS_METRICS_NAMESPACE": "ClipClassifier",
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        runtime.reset()
        api_key = api_key or secrets.token_urlsafe(24)
        score = load_function("score_features")
        api = LocalApi(
            score.lambda_handler,
            api_routes(load_template(), "ScoreFeaturesFunction"),
            api_key=api_key,
            port=api_port,
        ).start()
        try:
            yield LocalStack(endpoint, TABLE, weights_uri, api, api_key)
        finally:
            api.stop()
            runtime.reset()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

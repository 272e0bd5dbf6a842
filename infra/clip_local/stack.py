"""The whole local stack in one context manager: moto + resources from template.yaml + both functions.

* DynamoDB table, upload bucket and dead-letter queue are created from template.yaml's definitions.
* The example head weights are put in a moto bucket and read through the real S3 → /tmp cache.
* The scoring function is served over HTTP like API Gateway (``LocalApi``).
* The upload function receives S3 notifications (``LocalUploads``) through Lambda's async retry and
  on-failure-destination semantics (``AsyncInvoker``), with the template's own environment values.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from clip_classifier import runtime

from .apigw import LocalApi
from .handlers import load_function
from .lambda_async import AsyncInvoker, Handler
from .moto_server import moto_server
from .paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from .template import (
    api_routes,
    create_bucket,
    create_queue,
    create_table,
    function_environment,
    load_template,
)
from .template import max_retry_attempts as template_retries
from .uploads import LocalUploads

TABLE = "clip-results"
MODEL_BUCKET = "clip-local-models"
UPLOAD_BUCKET = "clip-uploads-local"
DEAD_LETTER_QUEUE = "clip-upload-dlq"
WEIGHTS_KEY = "heads/example_head.json"


@dataclass
class LocalStack:
    endpoint: str
    table: str
    weights_uri: str
    api: LocalApi
    api_key: str
    upload_bucket: str
    key_prefix: str
    dead_letter_queue_url: str
    invoker: AsyncInvoker
    uploads: LocalUploads

    def upload(self, name: str, data: bytes) -> bool:
        """Put ``data`` under the upload prefix and deliver the notification; False if it was dead-lettered."""
        return bool(self.uploads.put(self.key_prefix + name, data))

    def result(self, picture_id: str) -> Any:
        return runtime.results_store().get(picture_id)


def silenced(handler: Handler) -> Handler:
    """The handler with its stdout discarded: Powertools prints the ColdStart metric even when
    POWERTOOLS_METRICS_DISABLED is set (``single_metric`` does not check it, 3.37)."""

    def run(event: dict[str, Any], context: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return handler(event, context)

    return run


@contextmanager
def local_stack(
    *,
    api_port: int = 0,
    moto_port: int | None = None,
    weights: Path = EXAMPLE_WEIGHTS,
    model_dir: Path = TINY_MODEL_DIR / "int8",
    api_key: str | None = None,
    extra_env: dict[str, str] | None = None,
    quiet: bool = False,
) -> Iterator[LocalStack]:
    """moto on 127.0.0.1 with the template's resources, and both functions wired to it.

    ``quiet`` keeps the functions' JSON logs and EMF metrics off the terminal (they would bury the table).
    """
    template = load_template()
    with moto_server(moto_port) as endpoint, tempfile.TemporaryDirectory(prefix="clip-local-") as cache:
        dynamodb, s3, sqs = boto3.client("dynamodb"), boto3.client("s3"), boto3.client("sqs")
        create_table(dynamodb, TABLE)
        s3.create_bucket(Bucket=MODEL_BUCKET)
        s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=weights.read_bytes())
        create_bucket(s3, UPLOAD_BUCKET)
        dlq_url = create_queue(sqs, DEAD_LETTER_QUEUE)
        weights_uri = f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}"
        env = {
            **function_environment(template, "ClassifyUploadFunction"),
            **function_environment(template, "ScoreFeaturesFunction"),
            "RESULTS_TABLE": TABLE,
            "WEIGHTS_URI": weights_uri,
            "CACHE_DIR": cache,
            "MODEL_PATH": str(model_dir / "model.onnx"),
            "POWERTOOLS_SERVICE_NAME": "clip-classifier",
            "POWERTOOLS_METRICS_NAMESPACE": "ClipClassifier",
            **({"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"} if quiet else {}),
            **(extra_env or {}),
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        runtime.reset()
        api_key = api_key or secrets.token_urlsafe(24)
        score = load_function("score_features")
        classify = load_function("classify_upload")
        api = LocalApi(
            silenced(score.lambda_handler) if quiet else score.lambda_handler,
            api_routes(template, "ScoreFeaturesFunction"),
            api_key=api_key,
            port=api_port,
        ).start()
        invoker = AsyncInvoker(
            silenced(classify.lambda_handler) if quiet else classify.lambda_handler,
            sqs,
            dlq_url,
            max_retry_attempts=template_retries(template, "ClassifyUploadFunction"),
        )
        uploads = LocalUploads(s3, UPLOAD_BUCKET, invoker.invoke)
        try:
            yield LocalStack(
                endpoint=endpoint,
                table=TABLE,
                weights_uri=weights_uri,
                api=api,
                api_key=api_key,
                upload_bucket=UPLOAD_BUCKET,
                key_prefix=env.get("KEY_PREFIX", ""),
                dead_letter_queue_url=dlq_url,
                invoker=invoker,
                uploads=uploads,
            )
        finally:
            api.stop()
            runtime.reset()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

"""The whole local stack in one context manager: moto + resources from template.yaml + both functions.

* DynamoDB table, upload bucket and dead-letter queue are created from template.yaml's definitions.
* The head weights are put in a moto bucket and read through the real S3 → /tmp cache.
* Each function is configured from the template's environment (Globals and its own variables, parameters
  at their defaults) plus what the stack decides (table, weights URI, model, cache dir), built with its own
  builder and explicit clients, exactly as its cold start does deployed — the process environment is not
  touched.
* The scoring and review functions are served over HTTP like API Gateway (``LocalApi``), the review routes
  behind the reviewers' user pool (moto's Cognito, created from the template) as its authorizer checks it.
* The upload function receives S3 notifications (``LocalUploads``) through Lambda's async retry and
  on-failure-destination semantics (``AsyncInvoker``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from clip_classifier.registry.service import HeadRegistry
from clip_classifier.settings import ReviewSettings, ScoreSettings, UploadSettings, load_settings
from clip_classifier.storage.head_registry import ACTIVE_KEY_S3, DynamoHeadRecords, S3HeadFiles
from clip_classifier.storage.result_item import ClassificationItem, utc_now
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.wiring import (
    ReviewFunction,
    ScoreFunction,
    UploadFunction,
    build_review_function,
    build_score_function,
    build_upload_function,
)

from .apigw import LocalApi, StaticMount
from .cognito import ReviewerPool, TokenVerifier, add_reviewer, create_reviewer_pool, sign_in
from .handlers import load_function
from .jobs import BACKFILL, EVALUATE, RESCORE, LocalJobs
from .lambda_async import AsyncInvoker, Handler
from .moto_server import DUMMY_SECRET, REGION, LocalAws, moto_server
from .paths import WEB_DIR, default_model_dir, initial_head
from .states_api import LocalStatesApi, state_machine_arn
from .template import (
    api_routes,
    create_bucket,
    create_queue,
    create_table,
    function_arn,
    function_environment,
    function_timeout,
    load_template,
)
from .template import max_retry_attempts as template_retries
from .uploads import LocalUploads

TABLE = "clip-results"
#: The head registry's bucket (HeadsBucket): registered heads, and the active one the functions serve.
HEADS_BUCKET = "clip-heads-local"
HEADS_TABLE = "clip-heads-local"
#: The object both functions serve (a fault test may write it directly, as a hand-made change would).
MODEL_BUCKET = HEADS_BUCKET
WEIGHTS_KEY = ACTIVE_KEY_S3
UPLOAD_BUCKET = "clip-uploads-local"
REPORTS_BUCKET = "clip-reports-local"
DEAD_LETTER_QUEUE = "clip-upload-dlq"
#: Who the local stack registers and activates its first head as.
LOCAL_OPERATOR = "local stack"
#: The state machines the local Step Functions endpoint serves (clip-classifier --local starts them).
STATE_MACHINES = [BACKFILL, RESCORE, EVALUATE]

F = TypeVar("F", ScoreFunction, UploadFunction, ReviewFunction)


class ExecutionEnvironment(Generic[F]):
    """One Lambda execution environment of a function: its dependencies are built at the first invocation
    (the cold start) and reused after; a build that fails fails that invocation and is tried again at the
    next one, as Lambda re-runs a failed init."""

    def __init__(
        self, build: Callable[[], F], create_handler: Callable[[F], Handler], *, quiet: bool
    ) -> None:
        self._build: Callable[[], F] = build
        self._create_handler: Callable[[F], Handler] = create_handler
        self._quiet = quiet
        self._lock = threading.Lock()
        #: One execution environment runs one invocation at a time (and ``silenced`` swaps sys.stdout,
        #: which concurrent invocations from several threads would tangle).
        self._invoking = threading.Lock()
        self._built: tuple[F, Handler] | None = None

    def function(self) -> F:
        """The built dependencies (building them now if no invocation has yet)."""
        return self._ensure()[0]

    def restart(self) -> None:
        """A new process in the same environment: memory is gone, /tmp is kept."""
        with self._lock:
            self._built = None

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._invoking:
            return self._ensure()[1](event, context)

    def _ensure(self) -> tuple[F, Handler]:
        with self._lock:
            if self._built is None:
                function = self._build()
                handler = self._create_handler(function)
                self._built = (function, silenced(handler) if self._quiet else handler)
            return self._built


@dataclass
class LocalStack:
    aws: LocalAws
    table: str
    weights_uri: str
    model_dir: Path
    api: LocalApi
    api_key: str
    upload_bucket: str
    key_prefix: str
    dead_letter_queue_url: str
    invoker: AsyncInvoker
    uploads: LocalUploads
    #: One execution environment per function (tests reach the built dependencies to inject faults).
    score: ExecutionEnvironment[ScoreFunction]
    upload: ExecutionEnvironment[UploadFunction]
    review: ExecutionEnvironment[ReviewFunction]
    #: The reviewers' user pool (moto's Cognito) and its app client, which the review routes' tokens come from.
    reviewers: ReviewerPool
    #: The upload function's environment variables, for further execution environments (worker processes).
    upload_env: dict[str, str]
    results: ResultsStore
    #: The backfill, rescore and evaluation state machines (their functions in worker processes, started
    #: on first use), and the Step Functions endpoint that starts them for clip-classifier --local.
    jobs: LocalJobs
    states: LocalStatesApi
    reports_bucket: str
    #: The head registry (HeadsBucket, HeadsTable), as clip-classifier reaches it.
    registry: HeadRegistry

    def outputs(self) -> dict[str, Any]:
        """What ``clip-classifier --local`` reads (``.local/outputs.json``): the stack's outputs by the
        template's names, and how to reach moto and the local Step Functions."""
        return {
            "endpoint": self.aws.endpoint,
            "statesEndpoint": self.states.url,
            "region": REGION,
            "credentials": DUMMY_SECRET,
            "outputs": {
                "HeadsBucketName": HEADS_BUCKET,
                "HeadsTableName": HEADS_TABLE,
                "ReportsBucketName": self.reports_bucket,
                "ResultsTableName": self.table,
                "UploadBucketName": self.upload_bucket,
                "ApiUrl": f"{self.api.url}/api",
                "ReviewerUserPoolId": self.reviewers.pool_id,
                "ReviewerClientId": self.reviewers.client_id,
                "WeightsRefreshSeconds": self.upload_env.get("WEIGHTS_REFRESH_SECONDS", "300"),
                **({"EventBusName": bus} if (bus := self.upload_env.get("EVENT_BUS_NAME")) else {}),
                **{f"{m}Arn": state_machine_arn(m) for m in STATE_MACHINES},
            },
        }

    def activate_head(self, weights: Path) -> str:
        """Register ``weights`` and activate it, as ``clip-classifier heads add`` + ``activate`` do; its
        version. The functions pick it up at their next ETag check."""
        record, _ = self.registry.register(weights.read_bytes(), by=LOCAL_OPERATOR, location=str(weights))
        self.registry.activate(record.version, by=LOCAL_OPERATOR)
        return record.version

    def put_existing(self, name: str, data: bytes) -> None:
        """Put ``data`` under the upload prefix without a notification: an object from before the stack."""
        self.client("s3").put_object(Bucket=self.upload_bucket, Key=self.key_prefix + name, Body=data)

    def replace_weights(self, weights: Path) -> None:
        """Serve a new head (registered and activated; functions pick it up at their next ETag check)."""
        self.activate_head(weights)

    def upload_file(self, name: str, data: bytes) -> bool:
        """Put ``data`` under the upload prefix and deliver the notification; False if it was dead-lettered."""
        return bool(self.uploads.put(self.key_prefix + name, data))

    def result(self, picture_id: str) -> ClassificationItem | None:
        return self.results.get(picture_id)

    def add_reviewer(self, email: str, password: str) -> None:
        """A reviewer in the user pool, as an administrator adds one (admin-create-user)."""
        add_reviewer(self.client("cognito-idp"), self.reviewers, email, password)

    def sign_in(self, email: str, password: str) -> str:
        """The reviewer's ID token (the review routes' Authorization header)."""
        return sign_in(self.client("cognito-idp"), self.reviewers, email, password)

    def review_page_url(self) -> str:
        """The review page on the API's origin, told where to sign in."""
        pool = self.reviewers
        return f"{self.api.url}/review/?client={pool.client_id}&cognito={pool.endpoint}"

    def client(self, service: str) -> Any:
        return self.aws.client(service)


def silenced(handler: Handler) -> Handler:
    """The handler with its stdout discarded: Powertools prints its JSON logs and EMF metrics there (and
    the ColdStart metric even when metrics are disabled: ``single_metric`` does not check, 3.37)."""

    def run(event: dict[str, Any], context: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return handler(event, context)

    return run


def web_mounts(model_dir: Path) -> list[StaticMount]:
    """The browser pages on the API's origin: the demo at / (its module, onnxruntime-web and the model), and
    the review page at /review/."""
    return [
        StaticMount("/", WEB_DIR / "demo", index="index.html"),
        StaticMount("/demo/", WEB_DIR / "demo"),
        StaticMount("/src/", WEB_DIR / "src"),
        StaticMount("/ort/", WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"),
        StaticMount("/model/", model_dir),
        StaticMount("/review/", WEB_DIR / "review", index="index.html", isolated=False),
    ]


@contextmanager
def local_stack(
    *,
    api_port: int = 0,
    moto_port: int | None = None,
    weights: Path | None = None,
    model_dir: Path | None = None,
    api_key: str | None = None,
    extra_env: dict[str, str] | None = None,
    quiet: bool = False,
    workers: int | None = None,
) -> Iterator[LocalStack]:
    """moto on 127.0.0.1 with the template's resources, and both functions wired to it.

    ``weights``: the first head, registered and activated (default: the model's zero-shot head when
    ``make model`` built one, else the random example head).
    ``extra_env`` overrides the functions' environment variables (as a template parameter would).
    ``quiet`` keeps the functions' JSON logs and EMF metrics off the terminal (they would bury the table).
    ``workers``: execution environments of each state machine's function (default 4).
    """
    template = load_template()
    model_dir = model_dir or default_model_dir()
    score_app, upload_app = load_function("score_features"), load_function("classify_upload")
    review_app = load_function("review_labels")
    levels = [(app.logger, app.logger.log_level) for app in (score_app, upload_app, review_app)]
    if quiet:
        # Powertools' log handler holds the real stdout, so redirecting it (``silenced``) is not enough.
        for logger, _ in levels:
            logger.setLevel(logging.ERROR)
    with moto_server(moto_port) as aws, tempfile.TemporaryDirectory(prefix="clip-local-") as cache:
        dynamodb, s3, sqs = aws.client("dynamodb"), aws.client("s3"), aws.client("sqs")
        create_table(dynamodb, TABLE)
        create_bucket(s3, HEADS_BUCKET, logical_id="HeadsBucket")
        create_table(dynamodb, HEADS_TABLE, logical_id="HeadsTable")
        registry = HeadRegistry(
            DynamoHeadRecords(HEADS_TABLE, dynamodb), S3HeadFiles(HEADS_BUCKET, s3), clock=utc_now
        )
        # What 'clip-classifier heads init --model-dir DIR --head FILE' does for a deployed stack.
        registry.files.put_embedder((model_dir / "manifest.json").read_bytes())
        first = weights or initial_head(model_dir)
        record, _ = registry.register(first.read_bytes(), by=LOCAL_OPERATOR, location=str(first))
        registry.activate(record.version, by=LOCAL_OPERATOR)
        create_bucket(s3, UPLOAD_BUCKET)
        create_bucket(s3, REPORTS_BUCKET, logical_id="ReportsBucket")
        dlq_url = create_queue(sqs, DEAD_LETTER_QUEUE)
        # PublishEvents=true, as a template parameter would set it: the stack's bus, in moto.
        event_bus = (extra_env or {}).get("EVENT_BUS_NAME", "")
        if event_bus:
            aws.client("events").create_event_bus(Name=event_bus)
        weights_uri = f"s3://{HEADS_BUCKET}/{ACTIVE_KEY_S3}"
        stack_values = {"RESULTS_TABLE": TABLE, "WEIGHTS_URI": weights_uri, "CACHE_DIR": cache}
        upload_env = {
            **function_environment(template, "ClassifyUploadFunction"),
            **stack_values,
            "MODEL_PATH": str(model_dir / "model.onnx"),
            "UPLOAD_BUCKET": UPLOAD_BUCKET,
            **(extra_env or {}),
        }
        score_env = {
            **function_environment(template, "ScoreFeaturesFunction"),
            **stack_values,
            "EMBEDDER_MANIFEST": str(model_dir / "manifest.json"),
            **(extra_env or {}),
        }
        backfill_env = {
            **function_environment(template, "BackfillBatchFunction"),
            **stack_values,
            "MODEL_PATH": str(model_dir / "model.onnx"),
            "UPLOAD_BUCKET": UPLOAD_BUCKET,
            **(extra_env or {}),
        }
        rescore_env = {
            **function_environment(template, "RescoreResultsFunction"),
            **stack_values,
            "EMBEDDER_MANIFEST": str(model_dir / "manifest.json"),
            "REPORTS_BUCKET": REPORTS_BUCKET,
            "UPLOAD_BUCKET": UPLOAD_BUCKET,
            **(extra_env or {}),
        }
        review_env = {
            **function_environment(template, "ReviewLabelsFunction"),
            **stack_values,
            "UPLOAD_BUCKET": UPLOAD_BUCKET,
            **(extra_env or {}),
        }
        evaluate_env = {
            **function_environment(template, "EvaluateHeadsFunction"),
            **stack_values,
            "EMBEDDER_MANIFEST": str(model_dir / "manifest.json"),
            "HEADS_BUCKET": HEADS_BUCKET,
            "HEADS_TABLE": HEADS_TABLE,
            "REPORTS_BUCKET": REPORTS_BUCKET,
            **(extra_env or {}),
        }
        jobs = LocalJobs(
            aws,
            template,
            environments={
                "BackfillBatchFunction": backfill_env,
                "RescoreResultsFunction": rescore_env,
                "EvaluateHeadsFunction": evaluate_env,
            },
            substitutions={
                "UploadBucket": UPLOAD_BUCKET,
                "ReportsBucket": REPORTS_BUCKET,
                "WeightsUri": weights_uri,
                "BackfillFunctionArn": function_arn("BackfillBatchFunction"),
                "RescoreFunctionArn": function_arn("RescoreResultsFunction"),
                "EvaluateFunctionArn": function_arn("EvaluateHeadsFunction"),
            },
            **({"workers": workers} if workers else {}),
            quiet=quiet,
        )
        upload_settings = load_settings(UploadSettings, upload_env)
        score = ExecutionEnvironment(
            lambda: build_score_function(load_settings(ScoreSettings, score_env), aws.clients()),
            score_app.create_handler,
            quiet=quiet,
        )
        upload = ExecutionEnvironment(
            lambda: build_upload_function(upload_settings, aws.clients()),
            upload_app.create_handler,
            quiet=quiet,
        )
        review = ExecutionEnvironment(
            lambda: build_review_function(load_settings(ReviewSettings, review_env), aws.clients()),
            review_app.create_handler,
            quiet=quiet,
        )
        reviewers = create_reviewer_pool(aws.client("cognito-idp"), aws.endpoint, REGION)
        verifier = TokenVerifier(reviewers, frozenset({reviewers.client_id}))
        api_key = api_key or secrets.token_urlsafe(24)
        api = LocalApi(
            {"ScoreFeaturesFunction": score, "ReviewLabelsFunction": review},
            api_routes(template, "ScoreFeaturesFunction") + api_routes(template, "ReviewLabelsFunction"),
            api_key=api_key,
            port=api_port,
            static=web_mounts(model_dir),
            authorizers={"ReviewerPool": verifier.claims},
        ).start()
        states = LocalStatesApi(jobs, STATE_MACHINES).start()
        invoker = AsyncInvoker(
            upload,
            sqs,
            dlq_url,
            max_retry_attempts=template_retries(template, "ClassifyUploadFunction"),
            timeout_seconds=function_timeout(template, "ClassifyUploadFunction"),
        )
        try:
            yield LocalStack(
                aws=aws,
                table=TABLE,
                weights_uri=weights_uri,
                model_dir=model_dir,
                api=api,
                api_key=api_key,
                upload_bucket=UPLOAD_BUCKET,
                key_prefix=upload_settings.key_prefix,
                dead_letter_queue_url=dlq_url,
                invoker=invoker,
                uploads=LocalUploads(s3, UPLOAD_BUCKET, invoker.invoke),
                score=score,
                upload=upload,
                review=review,
                reviewers=reviewers,
                upload_env=upload_env,
                results=ResultsStore(TABLE, dynamodb),
                jobs=jobs,
                states=states,
                reports_bucket=REPORTS_BUCKET,
                registry=registry,
            )
        finally:
            states.stop()
            jobs.close()
            api.stop()
            for logger, level in levels:
                logger.setLevel(level)

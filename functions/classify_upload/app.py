"""S3 upload classifier: ObjectCreated/ObjectRemoved events → classification results in DynamoDB.

Thin by design: Powertools parses the event, ``clip_classifier.jobs.upload`` does the work, and
outcomes become logs and EMF metrics here. A bad image is recorded as ``failed`` and does not raise;
transient AWS errors and configuration errors raise after every record was tried, so Lambda retries the
event (records already stored are absorbed as duplicates) and finally sends it to the dead-letter queue.
Image bytes and embeddings are never logged.

Wiring: :func:`create_handler` takes the pipeline built once per container by
``clip_classifier.wiring.build_upload_function``; the deployed entry point :func:`lambda_handler` builds it
from the environment at cold start (model and head loaded and verified before the first record).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from clip_classifier.aws import AwsClients
from clip_classifier.exceptions import ClassifierError
from clip_classifier.ingest.s3_event import ObjectEvent
from clip_classifier.invocation import ContainerHandler, Handler, deadline
from clip_classifier.jobs.upload import STAGES
from clip_classifier.settings import UploadSettings, load_settings
from clip_classifier.wiring import UploadFunction, build_upload_function

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end for what follows a decode (embed, store) and the last logs.
#: A record that reaches this point unfinished is retried rather than killed mid-write.
RESERVED_SECONDS = 5.0


def _object_event(record: S3EventRecord) -> ObjectEvent:
    raw = record.raw_event["s3"]["object"]
    return ObjectEvent(
        event_name=record.event_name,
        bucket=record.s3.bucket.name,
        # S3 URL-encodes keys in notifications ('+' for space, %XX for UTF-8); Powertools' S3Event leaves them so.
        key=unquote_plus(raw["key"]),
        size=raw.get("size"),
        etag=raw.get("eTag") or None,
        version_id=raw.get("versionId") or None,
        sequencer=raw["sequencer"],
        event_time=record.event_time,
    )


def metric_dimension(label: str) -> str:
    """A label as a CloudWatch dimension value (ASCII, at most 1,024 characters, never blank)."""
    value = label.encode("ascii", "backslashreplace").decode()[:1024]
    return value if value.strip() else "(blank)"


def label_metrics(top_label: str, ambiguous: bool | None) -> None:
    """``TopLabel`` with a ``label`` dimension (the dashboard's top-label distribution; the head's classes
    bound how many series there are), and ``Ambiguous`` when the head's guard marked the result."""
    with single_metric(
        name="TopLabel", unit=MetricUnit.Count, value=1, default_dimensions=metrics.default_dimensions
    ) as metric:
        metric.add_dimension(name="label", value=metric_dimension(top_label))
    if ambiguous:
        metrics.add_metric(name="Ambiguous", unit=MetricUnit.Count, value=1)


def create_handler(function: UploadFunction) -> Handler:
    """The Lambda handler over a built pipeline (one per container)."""
    classifier = function.classifier
    first = {"invocation": True}

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    @event_source(data_class=S3Event)
    def handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
        if first.pop("invocation", False):
            metrics.add_metric(name="ModelLoadMs", unit=MetricUnit.Milliseconds, value=function.init_ms)
            logger.info(
                "model loaded",
                extra={"init_ms": round(function.init_ms, 1), "threads": classifier.embedder.threads},
            )
            if classifier.embedder.cpu_warning:
                logger.warning(
                    "int8 kernels differ from the export's", extra={"detail": classifier.embedder.cpu_warning}
                )
        if "Records" not in event.raw_event:
            # S3 sends one s3:TestEvent when notifications are configured; nothing to classify.
            kind = event.raw_event.get("Event", "unknown")
            logger.info("event without records acknowledged", extra={"event": kind})
            return {"records": 0, "outcomes": {}}
        stop_by = deadline(context, RESERVED_SECONDS)
        counts: dict[str, int] = {}
        retry: ClassifierError | None = None
        for index, record in enumerate(event.records):
            try:
                object_event = _object_event(record)
            except (KeyError, TypeError, ValidationError) as exc:
                # A record S3 would never send (no or an oversize sequencer, no key): retrying cannot fix
                # it, and it must not stop the other records. Logged and counted, never stored.
                logger.error(
                    "malformed record skipped",
                    extra={"record_index": index, "error": f"{type(exc).__name__}: {str(exc)[:300]}"},
                )
                metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=1)
                counts["malformed"] = counts.get("malformed", 0) + 1
                continue
            try:
                outcome = classifier.process(object_event, stop_by)
            except ClassifierError as exc:
                # Keep going so the other records are stored; raise at the end for Lambda's retry → DLQ.
                logger.error(
                    "record not processed",
                    extra={"code": exc.code, "error": exc.message, "transient": exc.transient},
                )
                metrics.add_metric(name="RecordErrors", unit=MetricUnit.Count, value=1)
                retry = retry or exc
                continue
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            metrics.add_metric(name=outcome.status.capitalize(), unit=MetricUnit.Count, value=1)
            if outcome.status == "classified" and outcome.top_label is not None:
                label_metrics(outcome.top_label, outcome.ambiguous)
            if outcome.events_failed:
                # The result is stored; only its announcement is missing (EventBridge throttled or failed).
                metrics.add_metric(
                    name="EventsNotPublished", unit=MetricUnit.Count, value=outcome.events_failed
                )
            if outcome.status == "failed" and outcome.code:
                metrics.add_metric(name=f"Failed_{outcome.code}", unit=MetricUnit.Count, value=1)
            if outcome.code == "other_bucket":
                logger.warning(
                    "event for another bucket ignored",
                    extra={"bucket": object_event.bucket, "expected": function.settings.upload_bucket},
                )
            for stage in STAGES:
                if stage in outcome.timings_ms:
                    metrics.add_metric(
                        name=f"{stage.capitalize()}Ms",
                        unit=MetricUnit.Milliseconds,
                        value=outcome.timings_ms[stage],
                    )
            logger.info(
                "record processed",
                extra={
                    "picture_id": outcome.picture_id,
                    "status": outcome.status,
                    "code": outcome.code,
                    "top_label": outcome.top_label,
                    "timings_ms": outcome.timings_ms,
                },
            )
        if retry is not None:
            raise retry
        return {"records": len(list(event.records)), "outcomes": counts}

    return handler  # type: ignore[no-any-return]


#: The deployed entry point: built at the container's first invocation (a missing or malformed environment
#: variable, or a missing or tampered model, fails there with a clear error), then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_upload_function(load_settings(UploadSettings), AwsClients.create()))
)

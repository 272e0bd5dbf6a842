"""Backfill batch function: one child of the backfill state machine's Distributed Map → per-key outcomes.

Thin by design: Powertools parses the batch, ``clip_classifier.jobs.backfill`` runs the upload pipeline over its
keys, and outcomes become logs, EMF metrics and the child's output (which the map's ResultWriter keeps).
It is the upload function's container image with another command (template.yaml ``ImageConfig``), so it
classifies exactly as uploads are classified. A bad image is a ``failed`` item; a transient AWS error
fails the batch after every key was tried, as ``TransientBatchError``, which the state machine retries;
keys already stored are then skipped. Image bytes and embeddings are never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.aws import AwsClients
from clip_classifier.invocation import ContainerHandler, Handler, batch_errors, deadline, invalid_input
from clip_classifier.jobs.backfill import BackfillBatch
from clip_classifier.settings import UploadSettings, load_settings
from clip_classifier.wiring import BackfillFunction, build_backfill_function

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end: a key that reaches it unfinished retries the batch.
RESERVED_SECONDS = 10.0


def create_handler(function: BackfillFunction) -> Handler:
    """The Lambda handler over a built backfill service (one per container)."""

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        with invalid_input("a backfill batch"):
            batch = parse(event=event, model=BackfillBatch)
        with batch_errors(logger, "batch not finished"):
            result = function.service.run(batch, deadline(context, RESERVED_SECONDS))
        for status, count in result.counts.items():
            metrics.add_metric(name=f"Backfill{status.capitalize()}", unit=MetricUnit.Count, value=count)
        logger.info("batch processed", extra={"keys": len(batch.items), "counts": result.counts})
        return result.model_dump(by_alias=True, exclude_none=True)

    return handler  # type: ignore[no-any-return]


#: The deployed entry point: built at the container's first invocation, then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_backfill_function(load_settings(UploadSettings), AwsClients.create()))
)

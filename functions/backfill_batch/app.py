"""Backfill batch function: one child of the backfill state machine's Distributed Map → per-key outcomes.

Thin by design: Powertools parses the batch, ``clip_classifier.backfill`` runs the upload pipeline over its
keys, and outcomes become logs, EMF metrics and the child's output (which the map's ResultWriter keeps).
It is the upload function's container image with another command (template.yaml ``ImageConfig``), so it
classifies exactly as uploads are classified. A bad image is a ``failed`` item; a transient AWS error
fails the batch after every key was tried, as ``TransientBatchError``, which the state machine retries;
keys already stored are then skipped. Image bytes and embeddings are never logged.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.aws import AwsClients
from clip_classifier.backfill import BackfillBatch
from clip_classifier.exceptions import ClassifierError, InvalidBatchError, TransientBatchError
from clip_classifier.settings import UploadSettings, load_settings
from clip_classifier.wiring import BackfillFunction, build_backfill_function

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end: a key that reaches it unfinished retries the batch.
RESERVED_SECONDS = 10.0


def create_handler(function: BackfillFunction) -> Handler:
    """The Lambda handler over a built backfill service (one per container)."""

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            batch = parse(event=event, model=BackfillBatch)
        except ValidationError as exc:
            raise InvalidBatchError(f"not a backfill batch: {str(exc)[:500]}") from exc
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVED_SECONDS
        try:
            result = function.service.run(batch, deadline)
        except ClassifierError as exc:
            logger.error(
                "batch not finished",
                extra={"code": exc.code, "error": exc.message, "transient": exc.transient},
            )
            if exc.transient:
                raise TransientBatchError(f"{exc.code}: {exc.message}") from exc
            raise
        for status, count in result.counts.items():
            metrics.add_metric(name=f"Backfill{status.capitalize()}", unit=MetricUnit.Count, value=count)
        logger.info("batch processed", extra={"keys": len(batch.items), "counts": result.counts})
        return result.model_dump(by_alias=True, exclude_none=True)

    return handler  # type: ignore[no-any-return]


@functools.cache
def _container_handler() -> Handler:
    """Built at the first invocation of a container (its cold start), then reused."""
    return create_handler(build_backfill_function(load_settings(UploadSettings), AwsClients.create()))


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _container_handler()(event, context)

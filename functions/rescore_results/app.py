"""Rescore function: one call of a rescore segment's loop, or the run's closing manifest.

Thin by design: Powertools parses the input, ``clip_classifier.rescore`` scores stored embeddings with the
current head, and counts become logs, EMF metrics and the call's output, which the state machine passes
back in until the segment is ``done``. A zip function on the shared layer: no model and no image is
loaded. A transient AWS error raises ``TransientBatchError``, which the state machine retries from the
same ``startKey`` (items already re-scored are then ``current``). Embeddings are never logged.
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
from clip_classifier.exceptions import ClassifierError, InvalidBatchError, TransientBatchError
from clip_classifier.rescore import ManifestRequest, RescoreRequest
from clip_classifier.settings import RescoreSettings, load_settings
from clip_classifier.wiring import RescoreFunction, build_rescore_function

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end: the last page is finished and its list written in them.
RESERVED_SECONDS = 30.0


def create_handler(function: RescoreFunction) -> Handler:
    """The Lambda handler over a built rescore service (one per container)."""

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        try:
            if isinstance(event, dict) and event.get("action") == "manifest":
                manifest = parse(event=event, model=ManifestRequest)
                written = function.service.lists.write_manifest(manifest.run_id)
                logger.info("backfill list written", extra=written.model_dump())
                return written.model_dump()
            request = parse(event=event, model=RescoreRequest)
        except ValidationError as exc:
            raise InvalidBatchError(f"not a rescore request: {str(exc)[:500]}") from exc
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - RESERVED_SECONDS
        try:
            progress = function.service.run(request, deadline)
        except ClassifierError as exc:
            logger.error(
                "segment call failed",
                extra={"code": exc.code, "error": exc.message, "transient": exc.transient},
            )
            if exc.transient:
                raise TransientBatchError(f"{exc.code}: {exc.message}") from exc
            raise
        done = {k: v - request.totals.get(k, 0) for k, v in progress.totals.items()}
        for status, count in done.items():
            if count:
                metrics.add_metric(
                    name=f"Rescore{status.title().replace('_', '')}", unit=MetricUnit.Count, value=count
                )
        logger.info(
            "segment page(s) scored",
            extra={"segment": request.segment, "counts": done, "done": progress.done},
        )
        return progress.model_dump(by_alias=True)

    return handler  # type: ignore[no-any-return]


@functools.cache
def _container_handler() -> Handler:
    """Built at the first invocation of a container (its cold start), then reused."""
    return create_handler(build_rescore_function(load_settings(RescoreSettings), AwsClients.create()))


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _container_handler()(event, context)

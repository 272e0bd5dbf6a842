"""Rescore function: one call of a rescore segment's loop, or the run's closing manifest.

Thin by design: Powertools parses the input, ``clip_classifier.jobs.rescore`` scores stored embeddings with the
current head, and counts become logs, EMF metrics and the call's output, which the state machine passes
back in until the segment is ``done``. A zip function on the shared layer: no model and no image is
loaded. A transient AWS error raises ``TransientBatchError``, which the state machine retries from the
same ``startKey`` (items already re-scored are then ``current``). Embeddings are never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.aws import AwsClients
from clip_classifier.invocation import ContainerHandler, Handler, batch_errors, deadline, invalid_input
from clip_classifier.jobs.rescore import ManifestRequest, RescoreRequest
from clip_classifier.settings import RescoreSettings, load_settings
from clip_classifier.wiring import RescoreFunction, build_rescore_function

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end: the last page is finished and its list written in them.
RESERVED_SECONDS = 30.0


def create_handler(function: RescoreFunction) -> Handler:
    """The Lambda handler over a built rescore service (one per container)."""

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        with invalid_input("a rescore request"):
            if isinstance(event, dict) and event.get("action") == "manifest":
                manifest = parse(event=event, model=ManifestRequest)
                written = function.service.lists.write_manifest(manifest.run_id)
                logger.info("backfill list written", extra=written.model_dump())
                return written.model_dump()
            request = parse(event=event, model=RescoreRequest)
        with batch_errors(logger, "segment call failed"):
            progress = function.service.run(request, deadline(context, RESERVED_SECONDS))
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


#: The deployed entry point: built at the container's first invocation, then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_rescore_function(load_settings(RescoreSettings), AwsClients.create()))
)

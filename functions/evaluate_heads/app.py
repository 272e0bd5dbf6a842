"""Evaluation function: one call of a shadow evaluation's segment loop, or the run's closing report.

Thin by design: Powertools parses the input, ``clip_classifier.jobs.evaluate`` scores stored embeddings with
both heads (writing no result), and the call's output goes back to the state machine, which passes it in
again until the segment is ``done``. A zip function on the shared layer: no model and no image is loaded.
A transient AWS error raises ``TransientBatchError``, which the state machine retries from the same
``startKey`` (the retried call rewrites the same part, so nothing is counted twice). Embeddings are never
logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.aws import AwsClients
from clip_classifier.invocation import ContainerHandler, Handler, batch_errors, deadline, invalid_input
from clip_classifier.jobs.evaluate import ReportRequest, SegmentRequest
from clip_classifier.settings import EvaluateSettings, load_settings
from clip_classifier.wiring import EvaluateFunction, build_evaluate_function

logger = Logger()
metrics = Metrics()
#: Seconds kept back from the invocation's end: the last page is finished and its part written in them.
RESERVED_SECONDS = 30.0


def create_handler(function: EvaluateFunction) -> Handler:
    """The Lambda handler over a built evaluation service (one per container)."""

    @metrics.log_metrics(capture_cold_start_metric=True)
    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        with invalid_input("an evaluation request"):
            if isinstance(event, dict) and event.get("action") == "report":
                report = parse(event=event, model=ReportRequest)
                with batch_errors(logger, "report failed"):
                    summary = function.service.report(report)
                logger.info(
                    "evaluation report written", extra={"runId": report.run_id, **summary.model_dump()}
                )
                return summary.model_dump(by_alias=True)
            request = parse(event=event, model=SegmentRequest)
        with batch_errors(logger, "segment call failed"):
            progress = function.service.segment(request, deadline(context, RESERVED_SECONDS))
        metrics.add_metric(name="EvaluatedItems", unit=MetricUnit.Count, value=progress.seen - request.seen)
        logger.info(
            "segment page(s) evaluated",
            extra={"segment": request.segment, "items": progress.seen - request.seen, "done": progress.done},
        )
        return progress.model_dump(by_alias=True)

    return handler  # type: ignore[no-any-return]


#: The deployed entry point: built at the container's first invocation, then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_evaluate_function(load_settings(EvaluateSettings), AwsClients.create()))
)

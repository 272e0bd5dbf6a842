"""Replay events from the upload classifier's dead-letter queue.

Lambda's on-failure destination wraps the original event as ``requestPayload`` (a plain SQS dead-letter
queue holds the event itself); both are understood. Each event is re-invoked asynchronously and its message
deleted only after the invocation was accepted, so nothing is lost if the redrive stops half way.

    python -m clip_classifier.jobs.redrive --queue-url URL --function-name NAME [--max-messages N] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Invoke = Callable[[dict[str, Any]], None]


@dataclass
class RedriveReport:
    replayed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def original_event(body: str) -> dict[str, Any] | None:
    """The S3 event inside a DLQ message, or ``None`` when the message is not one of ours."""
    try:
        message = json.loads(body)
    except json.JSONDecodeError:
        return None
    if isinstance(message, dict) and isinstance(message.get("requestPayload"), dict):
        message = message["requestPayload"]
    if isinstance(message, dict) and isinstance(message.get("Records"), list):
        return message
    return None


def redrive(
    sqs: SQSClient, queue_url: str, invoke: Invoke, *, max_messages: int | None = None, dry_run: bool = False
) -> RedriveReport:
    report = RedriveReport()
    while max_messages is None or report.replayed + report.failed + report.skipped < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            event = original_event(message["Body"])
            if event is None:
                report.skipped += 1  # left in the queue for a person to look at
                continue
            if dry_run:
                report.replayed += 1
                continue
            try:
                invoke(event)
            except Exception as exc:  # noqa: BLE001 - any failure leaves the message for the next redrive
                report.failed += 1
                report.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            report.replayed += 1
    return report


def lambda_invoker(function_name: str) -> Invoke:
    """Re-invoke the function asynchronously, as S3 did (its retries and destination apply again)."""
    import boto3

    client = boto3.client("lambda")

    def invoke(event: dict[str, Any]) -> None:
        response = client.invoke(
            FunctionName=function_name, InvocationType="Event", Payload=json.dumps(event)
        )
        if response.get("StatusCode") != 202:
            raise RuntimeError(f"invoke returned {response.get('StatusCode')}")

    return invoke


def main(argv: list[str] | None = None, *, invoke: Invoke | None = None, sqs: SQSClient | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clip_classifier.jobs.redrive",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--function-name", required=invoke is None)
    parser.add_argument("--max-messages", type=int)
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed; change nothing")
    args = parser.parse_args(argv)
    if sqs is None:
        from clip_classifier.aws import sqs_client

        sqs = sqs_client()
    report = redrive(
        sqs,
        args.queue_url,
        invoke or lambda_invoker(args.function_name),
        max_messages=args.max_messages,
        dry_run=args.dry_run,
    )
    print(f"replayed {report.replayed}, failed {report.failed}, skipped (not an S3 event) {report.skipped}")
    for error in report.errors[:10]:
        print(f"  {error}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

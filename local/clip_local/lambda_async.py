"""Lambda's asynchronous invocation, emulated: retries, then the on-failure destination (SQS).

S3 invokes the upload function asynchronously. Lambda then retries a failed invocation
``MaximumRetryAttempts`` times (from template.yaml) and sends the event, wrapped as Lambda's destination
record, to the on-failure SQS queue. Here the retries are immediate instead of one and two minutes later.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .apigw import LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class AsyncInvoker:
    handler: Handler
    sqs: SQSClient
    dead_letter_queue_url: str
    max_retry_attempts: int = 2
    #: The function's Timeout (template.yaml): what the context's remaining time counts down from.
    timeout_seconds: float = 60
    function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:ClassifyUploadFunction"
    #: Attempts made per invoke() call, in order (for tests and the local summary).
    attempts: list[int] = field(default_factory=list)
    dead_lettered: int = 0

    def invoke(self, event: dict[str, Any]) -> bool:
        """Run the handler like Lambda's async path; ``False`` when the event went to the queue."""
        error: BaseException | None = None
        for attempt in range(1, self.max_retry_attempts + 2):
            try:
                self.handler(event, LambdaContext(self.timeout_seconds))
            except Exception as exc:  # noqa: BLE001 - Lambda catches everything the handler raises
                error = exc
                continue
            self.attempts.append(attempt)
            return True
        self.attempts.append(self.max_retry_attempts + 1)
        assert error is not None
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{self.function_arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": self.max_retry_attempts + 1,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
        }
        self.sqs.send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=json.dumps(record))
        self.dead_lettered += 1
        return False

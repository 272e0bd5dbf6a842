"""boto3 clients and the classification of AWS errors.

Clients are created lazily, once per container, with the SDK's ``standard`` retry mode (exponential backoff
with jitter on throttling, 5xx and connection errors) and short timeouts, so a slow dependency costs
seconds, not the whole Lambda timeout. ``AWS_ENDPOINT_URL`` (honoured by boto3 itself) points them at the
moto server in the local stack.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "ResourceNotFoundException"})
DENIED_CODES = frozenset({"403", "AccessDenied", "AccessDeniedException", "Forbidden"})
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "503",
        "500",
        "TransactionConflictException",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (error_code(exc) in NOT_FOUND_CODES or http_status(exc) == 404)


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (error_code(exc) in DENIED_CODES or http_status(exc) == 403)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts and connection failures: worth retrying later."""
    if isinstance(exc, ConnectionError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in THROTTLE_CODES or http_status(exc) >= 500
    return isinstance(exc, BotoCoreError)


@functools.cache
def _client(service: str) -> Any:
    return boto3.session.Session().client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]


def s3_client() -> S3Client:
    client: S3Client = _client("s3")
    return client


def dynamodb_client() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def sqs_client() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints and credentials between cases)."""
    _client.cache_clear()

"""AWS clients, and the one mapping from botocore errors to the classifier's own errors.

The functions' clients come from botocore alone: importing boto3 (and its s3transfer) would add ~50 ms to
every cold start for nothing the functions use. An operator's or the local stack's boto3 ``Session`` (a
profile, dummy credentials) is accepted where one is given. Clients are made explicitly, once per container, by each function's builder (:mod:`.wiring`) and passed
in; nothing here caches them. They use the SDK's ``standard`` retry mode (exponential backoff with jitter
on throttling, 5xx and connection errors) and short timeouts, so a slow dependency costs seconds, not the
whole Lambda timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from clip_classifier.exceptions import ClassifierError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=3,
    read_timeout=10,
)

#: S3 requests are SigV4 either way; this makes presigned links (the review queue's images) SigV4 too, where
#: botocore would sign them with the deprecated SigV2, which newer regions refuse.
S3_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(signature_version="s3v4"))

#: What botocore raises for a failed call; adapters catch exactly these and map them with :func:`aws_error`.
AWS_ERRORS = (ClientError, BotoCoreError)

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket", "ResourceNotFoundException"})
DENIED_CODES = frozenset({"403", "AccessDenied", "AccessDeniedException", "Forbidden"})
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
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


def session_client(service: str, *, session: Any = None, **kwargs: Any) -> Any:
    """A client with the shared retry/timeout config (``endpoint_url`` etc. pass through), from ``session``
    (a boto3 ``Session``, or a botocore one) or, by default, botocore's for the environment's credentials."""
    if session is None:
        session = botocore.session.get_session()
    config = S3_CLIENT_CONFIG if service == "s3" else CLIENT_CONFIG
    if isinstance(session, botocore.session.Session):
        return session.create_client(service, config=config, **kwargs)
    return session.client(service, config=config, **kwargs)


@dataclass(frozen=True)
class AwsClients:
    """The clients a function uses, made once per container."""

    s3: S3Client
    dynamodb: DynamoDBClient
    #: Makes a client of another service the same way (same session, endpoint and config), for what only
    #: some functions use (EventBridge): none is made at cold start unless asked for.
    make: Callable[[str], Any] | None = None

    @classmethod
    def create(cls, session: Any = None, **kwargs: Any) -> AwsClients:
        """Clients from ``session`` (a boto3 or botocore ``Session``; default: botocore's, for the
        environment's credentials and region)."""
        session = session or botocore.session.get_session()
        return cls(
            s3=session_client("s3", session=session, **kwargs),
            dynamodb=session_client("dynamodb", session=session, **kwargs),
            make=lambda service: session_client(service, session=session, **kwargs),
        )

    def client(self, service: str) -> Any:
        if self.make is None:
            raise ValueError(f"these clients cannot make a {service} client")
        return self.make(service)


def sqs_client(**kwargs: Any) -> SQSClient:
    client: SQSClient = session_client("sqs", **kwargs)
    return client


def error_code(exc: BaseException) -> str:
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (error_code(exc) in NOT_FOUND_CODES or _http_status(exc) == 404)


def is_precondition_failed(exc: BaseException) -> bool:
    return error_code(exc) in PRECONDITION_CODES


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (error_code(exc) in DENIED_CODES or _http_status(exc) == 403)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts and connection failures: worth retrying later."""
    if isinstance(exc, ConnectionError | ReadTimeoutError):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in THROTTLE_CODES or _http_status(exc) >= 500
    return isinstance(exc, BotoCoreError)


@dataclass(frozen=True)
class ErrorFamily:
    """Which of an adapter's errors stands for each kind of AWS failure (``None``: use ``other``)."""

    other: type[ClassifierError]
    transient: type[ClassifierError]
    denied: type[ClassifierError] | None = None
    not_found: type[ClassifierError] | None = None


def aws_error(exc: BaseException, family: ErrorFamily, *, action: str, target: str) -> ClassifierError:
    """The domain error for a failed AWS call: ``raise aws_error(exc, ...) from exc``.

    ``action`` is a verb phrase (``read``, ``write``), ``target`` what was acted on (``s3://b/k``).
    """
    if is_not_found(exc) and family.not_found is not None:
        return family.not_found(f"{target} does not exist")
    if is_denied(exc):
        return (family.denied or family.other)(f"no permission to {action} {target}")
    if is_transient(exc):
        return family.transient(f"{target} is temporarily unavailable: {exc}")
    return family.other(f"cannot {action} {target}: {exc}")

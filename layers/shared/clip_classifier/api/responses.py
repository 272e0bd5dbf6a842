"""The API functions' shared answers: every error body in one shape (``ErrorBody``: code, message, errors
naming fields), and CORS for the listed browser origins. Each function maps its own exceptions to these."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.metrics import MetricUnit

from clip_classifier.api.errors import describe_validation_errors
from clip_classifier.api.models import ErrorBody, ErrorDetail
from clip_classifier.exceptions import ClassifierError, ResultNotFoundError


def error_response(
    status: HTTPStatus, code: str, message: str, errors: list[ErrorDetail] | None = None
) -> Response[Any]:
    body = ErrorBody(code=code, message=message, errors=errors or [])
    return Response(
        status_code=status,
        content_type="application/json",
        body=body.model_dump_json(by_alias=True, exclude_none=True),
    )


def invalid_request_response(exc: RequestValidationError) -> Response[Any]:
    """400 for a body that is not JSON; else 422 naming the first field at fault (all are listed)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid JSON")
    details = describe_validation_errors(errors)
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", details[0].message, details)


def cors_config(origins: Sequence[str], *, allow_headers: Sequence[str]) -> CORSConfig | None:
    """CORS for the listed browser origins: every response, preflights included, names the requesting
    origin when it is allowed (never the joined list), and none when it is not."""
    if not origins:
        return None
    return CORSConfig(
        allow_origin=origins[0],
        extra_origins=list(origins[1:]),
        allow_headers=list(allow_headers),
        max_age=600,
    )


def answer_common_errors(app: APIGatewayRestResolver, logger: Logger, metrics: Metrics) -> None:
    """What every API function answers alike; each adds its own errors (Powertools picks the handler of the
    most specific class, whatever the order they were added in): a request that fails validation (400/422), a
    picture with no result (404), a deliberate error (503 when transient, else 500: logged and counted in
    ServerErrors), anything else (500, logged with its trace, never sent), and a route it does not have."""

    def not_found(exc: ResultNotFoundError) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, exc.code, exc.message)

    def classifier_error(exc: ClassifierError) -> Response[Any]:
        logger.error("request failed", extra={"code": exc.code, "error": exc.message})
        metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
        if exc.transient:
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE, exc.code, "a dependency is temporarily unavailable; retry"
            )
        return error_response(
            HTTPStatus.INTERNAL_SERVER_ERROR, exc.code, "the classifier is misconfigured; see the logs"
        )

    def unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unexpected error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")

    def no_route(exc: NotFoundError) -> Response[Any]:
        # API Gateway forwards only the template's routes; the one way here is a preflight (OPTIONS)
        # while no CORS origin is configured, which has no browser to answer.
        method = app.current_event.http_method
        if method == "OPTIONS":
            return error_response(
                HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "no CORS origins are configured"
            )
        return error_response(HTTPStatus.NOT_FOUND, "no_route", f"no route {method} {app.current_event.path}")

    app.exception_handler(RequestValidationError)(invalid_request_response)
    app.exception_handler(ResultNotFoundError)(not_found)
    app.exception_handler(ClassifierError)(classifier_error)
    app.exception_handler(Exception)(unexpected)
    app.exception_handler(NotFoundError)(no_route)

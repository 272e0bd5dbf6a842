"""The API functions' shared answers: every error body in one shape (``ErrorBody``: code, message, errors
naming fields), and CORS for the listed browser origins. Each function maps its own exceptions to these."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from clip_classifier.api.errors import describe_validation_errors
from clip_classifier.api.models import ErrorBody, ErrorDetail


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

"""HTTP API: score client-computed CLIP features with the MLP head; read stored results.

Thin by design: Powertools parses and validates the event, ``clip_classifier`` does the work, and every
error becomes a response in one place (:func:`_error`). No stack trace ever reaches a client; feature
vectors are never logged.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier import runtime
from clip_classifier.api_errors import describe_validation_errors
from clip_classifier.api_models import (
    BatchScoreResponse,
    ErrorBody,
    ErrorDetail,
    GatewayError,
    ModelInfo,
    ScoreRequest,
    ScoreResult,
)
from clip_classifier.exceptions import ClassifierError, InvalidFeaturesError, ResultNotFoundError
from clip_classifier.records import ClassificationRecord

logger = Logger()
metrics = Metrics()

_origins = [o.strip() for o in os.environ.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()]
_cors = (
    CORSConfig(allow_origin=_origins[0], extra_origins=_origins[1:], allow_headers=["x-api-key"], max_age=600)
    if _origins
    else None
)
app = APIGatewayRestResolver(enable_validation=True, cors=_cors)


def _error(
    status: HTTPStatus, code: str, message: str, errors: list[ErrorDetail] | None = None
) -> Response[Any]:
    body = ErrorBody(code=code, message=message, errors=errors or [])
    return Response(
        status_code=status,
        content_type="application/json",
        body=body.model_dump_json(by_alias=True, exclude_none=True),
    )


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid JSON")
    details = describe_validation_errors(errors)
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", details[0].message, details)


@app.exception_handler(InvalidFeaturesError)
def _invalid_features(exc: InvalidFeaturesError) -> Response[Any]:
    detail = ErrorDetail(field=exc.field, message=exc.message)
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY, exc.code, exc.message, [detail])


@app.exception_handler(ResultNotFoundError)
def _not_found(exc: ResultNotFoundError) -> Response[Any]:
    return _error(HTTPStatus.NOT_FOUND, exc.code, exc.message)


@app.exception_handler(ClassifierError)
def _classifier_error(exc: ClassifierError) -> Response[Any]:
    logger.error("request failed", extra={"code": exc.code, "error": exc.message})
    metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    if exc.transient:
        return _error(
            HTTPStatus.SERVICE_UNAVAILABLE, exc.code, "a dependency is temporarily unavailable; retry"
        )
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, exc.code, "the classifier is misconfigured; see the logs")


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")


def _errors(*codes: int) -> dict[int, Any]:
    """OpenAPI entries for the error responses a route can give (403/429 come from API Gateway itself)."""
    content = {"application/json": {"model": ErrorBody}}
    gateway = {"application/json": {"model": GatewayError}}
    entries: dict[int, Any] = {
        code: {"description": HTTPStatus(code).phrase, "content": content} for code in codes
    }
    entries[403] = {
        "description": "Missing or invalid API key, or unknown route (API Gateway)",
        "content": gateway,
    }
    entries[429] = {"description": "Throttled by the usage plan (API Gateway)", "content": gateway}
    return entries


@app.post(
    "/v1/scores",
    summary="Score one feature vector or a batch",
    responses={200: {"description": "Scores"}, **_errors(400, 413, 415, 422, 500, 503)},
)
def score(body: ScoreRequest) -> ScoreResult | BatchScoreResponse:
    entries = body.entries()
    results = runtime.scoring_service().score(entries, batch=body.items is not None)
    metrics.add_metric(name="ScoredVectors", unit=MetricUnit.Count, value=len(results))
    metrics.add_metric(name="StoredResults", unit=MetricUnit.Count, value=sum(r.stored for r in results))
    if body.items is not None:
        return BatchScoreResponse(items=results)
    return results[0]


@app.get(
    "/v1/classifications/<pictureId>",
    summary="Read a stored classification",
    responses={200: {"description": "The stored item"}, **_errors(404, 500, 503)},
)
def get_classification(
    pictureId: Annotated[str, Path(min_length=1, max_length=1024)],
) -> ClassificationRecord:
    return runtime.scoring_service().get(pictureId)


@app.get(
    "/v1/model",
    summary="Describe the head (and embedder) in service",
    responses={200: {"description": "The model"}, **_errors(500, 503)},
)
def model() -> ModelInfo:
    return runtime.scoring_service().model_info(runtime.embedder_info())


def _precheck(event: APIGatewayProxyEvent) -> Response[Any] | None:
    """Checks Powertools' request validation cannot express: body size and content type."""
    if event.http_method != "POST":
        return None
    limit = runtime.settings().max_body_bytes
    size = len(event.body or "")
    if event.is_base64_encoded:
        size = size * 3 // 4
    if size > limit:
        return _error(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "body_too_large",
            f"body is {size} bytes; the limit is {limit}",
        )
    content_type = (event.headers.get("content-type") or event.headers.get("Content-Type") or "").lower()
    if content_type and content_type.split(";")[0].strip() != "application/json":
        return _error(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json"
        )
    try:
        event.decoded_body  # noqa: B018 - decodes base64 and UTF-8, raising on bytes that are neither
    except (UnicodeDecodeError, ValueError):
        return _error(HTTPStatus.BAD_REQUEST, "malformed_json", "the request body is not valid UTF-8 JSON")
    return None


def openapi_document() -> str:
    """The API's OpenAPI document (committed as infra/openapi.json; a test keeps it in step)."""
    return app.get_openapi_json_schema(
        title="CLIP classifier API",
        version="1",
        description="Score CLIP image features with the classification head and read stored results. "
        "Every route needs an API key in the x-api-key header.",
        security_schemes={"apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})},
        security=[{"apiKey": []}],
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rejected = _precheck(APIGatewayProxyEvent(event))
    if rejected is not None:
        return {
            "statusCode": rejected.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": rejected.body if isinstance(rejected.body, str) else json.dumps(rejected.body),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)

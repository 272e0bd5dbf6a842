"""HTTP API: score client-computed CLIP features with the head; read stored results; describe the model.

Thin by design: Powertools parses and validates the event, ``clip_classifier`` does the work, and every
error becomes a response in one place (the exception handlers below). No stack trace ever reaches a client;
feature vectors are never logged.

Wiring: :func:`create_handler` takes the function's dependencies, built once per container by
``clip_classifier.wiring.build_score_function``; the deployed entry point :func:`lambda_handler` builds
them from the environment at cold start. Tests and the local stack call :func:`create_handler` with their
own.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
    OpenAPIResponseValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.api.json_body import parse_json_body
from clip_classifier.api.models import (
    BatchScoreResponse,
    Classification,
    ErrorBody,
    ErrorDetail,
    ModelInfo,
    ScoreRequest,
    ScoreResult,
)
from clip_classifier.api.request_checks import JSON_MEDIA_TYPE, check_body, is_json
from clip_classifier.api.responses import answer_common_errors, cors_config, error_response
from clip_classifier.aws import AwsClients
from clip_classifier.exceptions import (
    BodyTooLargeError,
    CorruptEmbeddingError,
    EmbeddingFromAnotherModelError,
    InvalidFeaturesError,
    MalformedBodyError,
    PictureConflictError,
    UnsupportedMediaTypeError,
)
from clip_classifier.invocation import ContainerHandler, Handler
from clip_classifier.settings import ScoreSettings, load_settings
from clip_classifier.wiring import ScoreFunction, build_score_function

logger = Logger()
metrics = Metrics()


def _invalid_features(exc: InvalidFeaturesError) -> Response[Any]:
    detail = ErrorDetail(field=exc.field, message=exc.message)
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, exc.code, exc.message, [detail])


def _malformed_body(exc: MalformedBodyError) -> Response[Any]:
    return error_response(HTTPStatus.BAD_REQUEST, exc.code, exc.message)


def _too_large(exc: BodyTooLargeError) -> Response[Any]:
    return error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, exc.code, exc.message)


def _unsupported_media_type(exc: UnsupportedMediaTypeError) -> Response[Any]:
    return error_response(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, exc.code, exc.message)


def _conflict(exc: PictureConflictError) -> Response[Any]:
    detail = ErrorDetail(field=exc.field, message=exc.message)
    return error_response(HTTPStatus.CONFLICT, exc.code, exc.message, [detail])


def _embedding_from_another_model(exc: EmbeddingFromAnotherModelError) -> Response[Any]:
    detail = ErrorDetail(field="include", message=exc.message)
    return error_response(HTTPStatus.CONFLICT, exc.code, exc.message, [detail])


def _corrupt_embedding(exc: CorruptEmbeddingError) -> Response[Any]:
    logger.error("stored embedding refused", extra={"code": exc.code, "error": exc.message})
    metrics.add_metric(name="ServerErrors", unit=MetricUnit.Count, value=1)
    return error_response(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        exc.code,
        f"{exc.message}; re-classify the image (backfill) to store it again",
    )


def _errors(*codes: int) -> dict[int, Any]:
    """OpenAPI entries for the error responses a route can give; 403 and 429 come from API Gateway itself,
    in the same shape (the template's GatewayResponses)."""
    content = {"application/json": {"model": ErrorBody}}
    entries: dict[int, Any] = {
        code: {"description": HTTPStatus(code).phrase, "content": content} for code in codes
    }
    entries[403] = {
        "description": "Missing or invalid API key (API Gateway: invalid_api_key)",
        "content": content,
    }
    entries[429] = {
        "description": "Over the usage plan's rate or daily quota (API Gateway: throttled, quota_exceeded)",
        "content": content,
    }
    return entries


def create_resolver(
    function: Callable[[], ScoreFunction], cors: CORSConfig | None = None
) -> APIGatewayRestResolver:
    """The API's routes and error mapping; ``function`` gives the dependencies when a route runs."""
    app = APIGatewayRestResolver(enable_validation=True, cors=cors, json_body_deserializer=parse_json_body)
    answer_common_errors(app, logger, metrics)
    app.exception_handler(MalformedBodyError)(_malformed_body)
    app.exception_handler(BodyTooLargeError)(_too_large)
    app.exception_handler(UnsupportedMediaTypeError)(_unsupported_media_type)
    app.exception_handler(InvalidFeaturesError)(_invalid_features)
    app.exception_handler(PictureConflictError)(_conflict)
    app.exception_handler(CorruptEmbeddingError)(_corrupt_embedding)
    app.exception_handler(EmbeddingFromAnotherModelError)(_embedding_from_another_model)

    def body_checks(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        """Size, media type and encoding, before anything parses the body; a refusal raises and is
        answered by the exception handlers, like every other error."""
        event = app.current_event
        content_type = event.headers.get("content-type")
        check_body(
            event.body,
            is_base64=bool(event.is_base64_encoded),
            content_type=content_type,
            limit=function().settings.max_body_bytes,
        )
        if content_type and is_json(content_type) and not content_type.startswith(JSON_MEDIA_TYPE):
            # JSON in another spelling (Application/JSON; charset=UTF-8): the validation middleware compares
            # the media type case-sensitively, so it is given the canonical one.
            headers = {k: v for k, v in event.raw_event["headers"].items() if k.lower() != "content-type"}
            event.raw_event["headers"] = {**headers, "content-type": JSON_MEDIA_TYPE}
        return next_middleware(app)

    # The body checks must run before the request is parsed, so this route runs Powertools' own validation
    # middlewares after them instead of the resolver's (which run before every other middleware).
    @app.post(
        "/v1/scores",
        summary="Score one feature vector or a batch",
        responses={200: {"description": "Scores"}, **_errors(400, 409, 413, 415, 422, 500, 503)},
        enable_validation=False,
        middlewares=[
            body_checks,
            OpenAPIRequestValidationMiddleware(),
            OpenAPIResponseValidationMiddleware(),
        ],
    )
    def score(body: ScoreRequest) -> ScoreResult | BatchScoreResponse:
        scored = function().service.score(body)
        results = scored.items if isinstance(scored, BatchScoreResponse) else [scored]
        metrics.add_metric(name="ScoredVectors", unit=MetricUnit.Count, value=len(results))
        metrics.add_metric(name="StoredResults", unit=MetricUnit.Count, value=sum(r.stored for r in results))
        return scored

    @app.get(
        "/v1/classifications/<pictureId>",
        summary="Read a stored classification",
        responses={200: {"description": "The stored item"}, **_errors(404, 409, 500, 503)},
    )
    def get_classification(
        pictureId: Annotated[str, Path(min_length=1, max_length=1024)],
        include: Annotated[
            Literal["embedding"] | None,
            Query(description="'embedding' adds the stored image features (uploads that kept them)."),
        ] = None,
    ) -> Classification:
        # API Gateway REST passes path parameters as sent, percent-encoded (encodeURIComponent). Decoding
        # is safe to repeat: a pictureId never contains '%'.
        return function().service.get(unquote(pictureId), include_embedding=include == "embedding")

    @app.get(
        "/v1/model",
        summary="Describe the head (and embedder) in service",
        responses={200: {"description": "The model"}, **_errors(500, 503)},
    )
    def model() -> ModelInfo:
        return function().service.model_info()

    return app


def _unavailable() -> ScoreFunction:
    raise RuntimeError("the OpenAPI document's resolver never serves requests")


def openapi_document() -> str:
    """The API's OpenAPI document (committed as infra/openapi.json; a test keeps it in step)."""
    return create_resolver(_unavailable).get_openapi_json_schema(
        title="CLIP classifier API",
        version="1",
        description="Score CLIP image features with the classification head and read stored results. "
        "Every route needs an API key in the x-api-key header.",
        security_schemes={"apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})},
        security=[{"apiKey": []}],
    )


def create_handler(function: ScoreFunction) -> Handler:
    """The Lambda handler over built dependencies (one per container)."""
    resolver = create_resolver(
        lambda: function, cors_config(function.settings.cors_allow_origins, allow_headers=["x-api-key"])
    )

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return resolver.resolve(event, context)

    return handler


#: The deployed entry point: built at the container's first invocation (a missing or malformed environment
#: variable fails there with the variable's name), then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_score_function(load_settings(ScoreSettings), AwsClients.create()))
)

"""HTTP API for reviewers: the review queue (``GET /v1/review``) and people's labels (``PUT``/``DELETE
/v1/classifications/{pictureId}/label``).

API Gateway lets a request in only with a reviewer's Cognito ID token (the ``ReviewerPool`` authorizer in
template.yaml), and passes its verified claims; who labelled is taken from them, never from the body. The
scoring API key opens nothing here. Thin by design: Powertools parses and validates, ``clip_classifier``
does the work, and every error becomes a response in one place. Tokens and image links are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from clip_classifier.api.json_body import parse_json_body
from clip_classifier.api.models import ErrorDetail
from clip_classifier.api.responses import answer_common_errors, cors_config, error_response
from clip_classifier.api.review_models import (
    DEFAULT_PAGE,
    MAX_PAGE,
    LabelRequest,
    LabelResult,
    ReviewQueuePage,
)
from clip_classifier.aws import AwsClients
from clip_classifier.exceptions import (
    ClassifierError,
    InvalidCursorError,
    LabelError,
    NotSignedInError,
)
from clip_classifier.invocation import ContainerHandler, Handler
from clip_classifier.settings import ReviewSettings, load_settings
from clip_classifier.wiring import ReviewFunction, build_review_function

logger = Logger()
metrics = Metrics()


def _field_error(field: str) -> Callable[[ClassifierError], Response[Any]]:
    def answer(exc: ClassifierError) -> Response[Any]:
        detail = ErrorDetail(field=field, message=exc.message)
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, exc.code, exc.message, [detail])

    return answer


def _not_signed_in(exc: NotSignedInError) -> Response[Any]:
    detail = ErrorDetail(field="Authorization", message=exc.message)
    return error_response(HTTPStatus.UNAUTHORIZED, exc.code, exc.message, [detail])


def reviewer(claims: dict[str, Any] | None) -> str:
    """Who is labelling, from the Cognito authorizer's verified claims: ``cognito:<email or username>``."""
    claims = claims or {}
    name = claims.get("email") or claims.get("cognito:username")
    if not claims.get("sub") or not isinstance(name, str) or not name:
        raise NotSignedInError("no reviewer identity on this request: sign in and send the ID token")
    return f"cognito:{name}"


def create_resolver(
    function: Callable[[], ReviewFunction], cors: CORSConfig | None = None
) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, cors=cors, json_body_deserializer=parse_json_body)
    answer_common_errors(app, logger, metrics)
    app.exception_handler(LabelError)(_field_error("label"))
    app.exception_handler(InvalidCursorError)(_field_error("cursor"))
    app.exception_handler(NotSignedInError)(_not_signed_in)

    def who() -> str:
        """The signed-in reviewer; every route asks first, so a request without one is refused before any
        read or write, whatever route it reached."""
        return reviewer(app.current_event.request_context.authorizer.claims)

    @app.get(
        "/v1/review",
        summary="The review queue: results waiting for a person, most uncertain first",
        responses={200: {"description": "A page of the queue"}},
    )
    def review_queue(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=4096)] = None,
    ) -> ReviewQueuePage:
        who()
        return function().service.page(limit=limit, cursor=cursor)

    @app.put(
        "/v1/classifications/<pictureId>/label",
        summary="Give a result a person's label",
        responses={200: {"description": "The result's labels"}},
    )
    def put_label(
        pictureId: Annotated[str, Path(min_length=1, max_length=1024)], body: LabelRequest
    ) -> LabelResult:
        # Percent-encoded as sent (API Gateway REST); a pictureId never contains '%'.
        result, unpublished = function().service.label(unquote(pictureId), body.label, by=who())
        metrics.add_metric(name="LabelsAdded", unit=MetricUnit.Count, value=1)
        if unpublished:
            metrics.add_metric(name="EventsNotPublished", unit=MetricUnit.Count, value=unpublished)
        return result

    @app.delete(
        "/v1/classifications/<pictureId>/label",
        summary="Withdraw a person's label",
        responses={200: {"description": "The result's labels"}},
    )
    def delete_label(pictureId: Annotated[str, Path(min_length=1, max_length=1024)]) -> LabelResult:
        who()
        result = function().service.unlabel(unquote(pictureId))
        metrics.add_metric(name="LabelsWithdrawn", unit=MetricUnit.Count, value=1)
        return result

    return app


def _unavailable() -> ReviewFunction:
    raise RuntimeError("the OpenAPI document's resolver never serves requests")


def openapi_document() -> str:
    """The reviewers' routes as an OpenAPI document (committed as infra/openapi-review.json; a test keeps it
    in step)."""
    return create_resolver(_unavailable).get_openapi_json_schema(
        title="CLIP classifier review API",
        version="1",
        description="The review queue and people's labels, for reviewers signed in to the stack's Cognito "
        "user pool: the Authorization header carries their ID token (API Gateway checks it; the scoring "
        "API key is not accepted). 401: no token, or a forged or expired one.",
        security_schemes={
            "cognitoIdToken": APIKey.model_validate({"name": "Authorization", "in": APIKeyIn.header})
        },
        security=[{"cognitoIdToken": []}],
    )


def create_handler(function: ReviewFunction) -> Handler:
    """The Lambda handler over built dependencies (one per container)."""
    cors = cors_config(function.settings.cors_allow_origins, allow_headers=["authorization", "content-type"])
    resolver = create_resolver(lambda: function, cors)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return resolver.resolve(event, context)

    return handler


#: The deployed entry point: built at the container's first invocation, then reused.
lambda_handler = ContainerHandler(
    lambda: create_handler(build_review_function(load_settings(ReviewSettings), AwsClients.create()))
)

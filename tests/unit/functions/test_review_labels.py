"""The reviewers' function end to end in-process: API Gateway events (as the Cognito authorizer passes them)
→ real handler → moto DynamoDB, S3 and EventBridge."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import numpy as np
import pytest

from clip_classifier.aws import AwsClients
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.ingest.s3_event import normalize_sequencer
from clip_classifier.settings import ReviewSettings, load_settings
from clip_classifier.storage.result_item import ClassificationItem, ErrorInfo, SourceInfo
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.storage.review_queue import NONE_OF_THESE
from clip_classifier.wiring import build_review_function
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.events import REVIEWER_CLAIMS
from clip_local.handlers import load_function
from clip_local.paths import EXAMPLE_WEIGHTS, REVIEW_OPENAPI_DOCUMENT
from clip_local.template import create_bucket
from tests.conftest import TABLE, function_env
from tests.helpers import event_bus_queue, load_event, predict_one
from tests.unit.events.test_messages import validate

UPLOADS = "clip-uploads-test"
LABEL = "/v1/classifications/{pictureId}/label"


class ReviewApi:
    def __init__(self, handler: Callable[..., dict[str, Any]]) -> None:
        self.handler = handler

    def invoke(self, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else None

    def call(
        self,
        method: str,
        resource: str,
        path: str,
        body: Any = None,
        *,
        query: str = "",
        claims: dict[str, str] | None = REVIEWER_CLAIMS,
    ) -> tuple[int, Any]:
        headers = {"content-type": "application/json"} if body is not None else {}
        raw = json.dumps(body).encode() if body is not None else b""
        route = Route.of(method, resource)
        return self.invoke(build_event(method, route, path, headers, raw, query, claims=claims))

    def queue(self, query: str = "") -> tuple[int, Any]:
        return self.call("GET", "/v1/review", "/v1/review", query=query)

    def label(self, picture_id: str, label: Any, **kw: Any) -> tuple[int, Any]:
        path = f"/v1/classifications/{quote(picture_id, safe='')}/label"
        return self.call("PUT", LABEL, path, {"label": label}, **kw)

    def unlabel(self, picture_id: str) -> tuple[int, Any]:
        return self.call("DELETE", LABEL, f"/v1/classifications/{quote(picture_id, safe='')}/label")


@pytest.fixture
def head() -> Head:
    return Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))


@pytest.fixture
def uploads(s3: Any) -> Any:
    create_bucket(s3, UPLOADS)
    return s3


@pytest.fixture
def make_api(dynamodb: Any, uploads: Any, weights_uri: str, tmp_path: Path) -> Callable[..., ReviewApi]:
    def make(**overrides: str) -> ReviewApi:
        stack = {
            "RESULTS_TABLE": TABLE,
            "WEIGHTS_URI": weights_uri,
            "CACHE_DIR": str(tmp_path / "cache"),
            "UPLOAD_BUCKET": UPLOADS,
        }
        env = function_env("ReviewLabelsFunction", **{**stack, **overrides})
        function = build_review_function(load_settings(ReviewSettings, env), AwsClients.create())
        return ReviewApi(load_function("review_labels").create_handler(function))

    return make


@pytest.fixture
def api(make_api: Callable[..., ReviewApi]) -> ReviewApi:
    return make_api()


def store_results(dynamodb: Any, uploads: Any, head: Head, count: int, *, queued: bool = True) -> list[str]:
    """``count`` results of the head on random features: uploads (with an image in the bucket) and API
    results alternately; ``queued``: all sampled into the queue."""
    store, rng, ids = ResultsStore(TABLE, dynamodb), np.random.default_rng(7), []
    for i in range(count):
        picture_id = f"IMG_{i:03d}.jpg" if i % 2 == 0 else f"api-{i:03d}"
        result = ResultFields.from_prediction(
            predict_one(head, rng.normal(0, 0.05, 512)), head_version=head.version
        )
        if i % 2 == 0:
            key = f"uploads/{picture_id}"
            version = uploads.put_object(Bucket=UPLOADS, Key=key, Body=b"image bytes")["VersionId"]
            source = SourceInfo(type="s3", bucket=UPLOADS, key=key, version_id=version)
        else:
            source = SourceInfo(type="api")
        item = ClassificationItem.classified(
            picture_id,
            result,
            source=source,
            sequencer=normalize_sequencer(f"{i + 1:X}") if i % 2 == 0 else None,
            review_sample_rate=1.0 if queued else 0.0,
        )
        if i % 2 == 0:
            assert store.put_if_newer(item)
        else:
            store.put_api_results([item])
        ids.append(picture_id)
    return ids


def whole_queue(api: ReviewApi, limit: int = 7) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        status, page = api.queue(f"limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        items += page["items"]
        cursor = page["cursor"]
        if cursor is None:
            return items


def test_committed_openapi_document_is_current() -> None:
    generated = json.loads(load_function("review_labels").openapi_document())
    assert generated == json.loads(REVIEW_OPENAPI_DOCUMENT.read_text()), "run: python -m clip_local.openapi"
    assert set(generated["paths"]) == {"/v1/review", "/v1/classifications/{pictureId}/label"}
    assert generated["security"] == [{"cognitoIdToken": []}]


def test_the_committed_review_events_drive_the_handler(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head
) -> None:
    """infra/events/api_*label*.json and api_review_queue.json, as ``sam local invoke -e`` would pass them."""
    store = ResultsStore(TABLE, dynamodb)
    result = ResultFields.from_prediction(predict_one(head, np.full(512, 0.01)), head_version=head.version)
    store.put_api_results(
        [ClassificationItem.classified("sample-001", result, source=SourceInfo(type="api"))]
    )
    status, body = api.invoke(load_event("api_put_label.json"))
    assert status == 200 and body["personLabel"] == "pet" and body["finalLabel"] == "pet"
    stored = store.get("sample-001")
    assert stored is not None and stored.labeled_by == f"cognito:{REVIEWER_CLAIMS['email']}"
    status, body = api.invoke(load_event("api_review_queue.json"))
    assert status == 200 and body["items"] == []
    status, body = api.invoke(load_event("api_delete_label.json"))
    assert status == 200 and body["personLabel"] is None and body["finalLabel"] == stored.top_label


def test_the_queue_pages_smallest_margin_first_with_the_top_3_and_image_links_for_uploads(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head
) -> None:
    ids = store_results(dynamodb, uploads, head, 23)
    items = whole_queue(api)
    assert sorted(i["pictureId"] for i in items) == sorted(ids)
    margins = [i["margin"] for i in items]
    assert margins == sorted(margins)
    status, page = api.queue("limit=5")
    assert status == 200 and len(page["items"]) == 5 and page["cursor"]
    assert page["classes"] == list(head.classes) and page["headVersion"] == head.version
    assert page["noneOfThese"] == NONE_OF_THESE
    for item in items:
        assert len(item["top"]) == 3
        top1, top2 = (t["probability"] for t in item["top"][:2])
        assert item["margin"] == pytest.approx(top1 - top2, abs=1e-6)
        if item["source"] == "api":
            assert item["imageUrl"] is None and item["key"] is None
            continue
        url = urlsplit(item["imageUrl"])
        query = parse_qs(url.query)
        assert url.path.endswith(quote(item["key"])) and UPLOADS in item["imageUrl"]
        assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query and "versionId" in query
        # The link opens the very version the result was made from.
        got = (
            boto3.client("s3")
            .get_object(Bucket=UPLOADS, Key=item["key"], VersionId=query["versionId"][0])["Body"]
            .read()
        )
        assert got == b"image bytes"


def test_a_label_takes_the_result_out_of_the_queue_and_a_withdrawal_puts_it_back(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head
) -> None:
    ids = store_results(dynamodb, uploads, head, 6)
    status, body = api.label(ids[0], head.classes[3])
    assert status == 200
    machine = ResultsStore(TABLE, dynamodb).get(ids[0])
    assert machine is not None and body["topLabel"] == machine.top_label
    assert body == {
        "pictureId": ids[0],
        "personLabel": head.classes[3],
        "labeledAt": body["labeledAt"],
        "topLabel": body["topLabel"],
        "finalLabel": head.classes[3],
        "queued": False,
    }
    status, body = api.label(ids[1], NONE_OF_THESE)
    assert status == 200 and body["finalLabel"] == NONE_OF_THESE
    assert {i["pictureId"] for i in whole_queue(api)} == set(ids[2:])
    labelled = ResultsStore(TABLE, dynamodb).get(ids[0])
    assert labelled is not None and labelled.person_label == head.classes[3]
    assert labelled.labeled_by == "cognito:reviewer@example.com" and labelled.final_label == head.classes[3]
    assert labelled.top_label == machine.top_label and labelled.probabilities == machine.probabilities
    status, body = api.unlabel(ids[0])
    assert status == 200 and body["personLabel"] is None and body["queued"] is False  # sampled at 0 here
    status, body = api.unlabel(ids[0])
    assert status == 404 and "no person's label" in body["message"]


def test_a_withdrawn_label_sends_an_ambiguous_result_back_to_the_queue(
    make_api: Callable[..., ReviewApi], dynamodb: Any, uploads: Any, head: Head
) -> None:
    api = make_api(REVIEW_SAMPLE_RATE="1")
    ids = store_results(dynamodb, uploads, head, 2)
    assert api.label(ids[0], head.classes[0])[0] == 200
    status, body = api.unlabel(ids[0])
    assert status == 200 and body["queued"] is True
    assert ids[0] in {i["pictureId"] for i in whole_queue(api)}


@pytest.mark.parametrize(
    ("label", "named"),
    [("zebra", '"zebra"'), ("PET", '"PET"'), ("", None), ("pet\u0000", None), ("x" * 300, None)],
)
def test_a_label_outside_the_classes_is_a_422_naming_it(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head, label: str, named: str | None
) -> None:
    ids = store_results(dynamodb, uploads, head, 1)
    status, body = api.label(ids[0], label)
    assert status == 422, body
    assert body["errors"][0]["field"] == "label"
    if named:
        assert named in body["message"] and "pet" in body["message"]
    stored = ResultsStore(TABLE, dynamodb).get(ids[0])
    assert stored is not None and stored.person_label is None and stored.review_queue == "open"


def test_a_label_is_compared_after_unicode_normalisation(api: ReviewApi, dynamodb: Any, uploads: Any) -> None:
    store = ResultsStore(TABLE, dynamodb)
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    result = ResultFields.from_prediction(predict_one(head, np.full(512, 0.02)), head_version=head.version)
    store.put_api_results([ClassificationItem.classified("n", result, source=SourceInfo(type="api"))])
    spaced = f"  {unicodedata.normalize('NFD', head.classes[0])} "
    status, body = api.label("n", spaced)
    assert status == 200 and body["personLabel"] == head.classes[0]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "label"), ({"label": 3}, "label"), ({"label": "pet", "by": "someone else"}, "by"), ([], "body")],
)
def test_a_wrong_label_body_is_a_422_naming_the_field(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head, body: Any, field: str
) -> None:
    ids = store_results(dynamodb, uploads, head, 1)
    path = f"/v1/classifications/{ids[0]}/label"
    status, answer = api.call("PUT", LABEL, path, body)
    assert status == 422 and answer["errors"][0]["field"] == field, answer


def test_a_label_for_an_unknown_or_failed_picture_is_a_404(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head
) -> None:
    status, body = api.label("no-such-picture", head.classes[0])
    assert status == 404 and "no-such-picture" in body["message"]
    failed = ClassificationItem(
        picture_id="broken.jpg",
        status="failed",
        source=SourceInfo(type="s3", bucket=UPLOADS, key="uploads/broken.jpg"),
        error=ErrorInfo(code="image_corrupt", message="truncated"),
        sequencer=normalize_sequencer("FF"),
    )
    ResultsStore(TABLE, dynamodb).put_if_newer(failed)
    status, body = api.label("broken.jpg", head.classes[0])
    assert status == 404
    stored = ResultsStore(TABLE, dynamodb).get("broken.jpg")
    assert stored is not None and stored.person_label is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=eyJwIjoieCIsIm0iOiI1In0", "cursor"),  # {"p":"x","m":"5"}: a margin out of range
    ],
)
def test_a_wrong_queue_query_is_a_422_naming_the_parameter(api: ReviewApi, query: str, field: str) -> None:
    status, body = api.queue(query)
    assert status == 422 and body["errors"][0]["field"] == field, body


def test_without_a_reviewer_identity_nothing_is_read_or_written(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head
) -> None:
    """API Gateway's authorizer lets no such request in; should one be routed here anyway, it is refused."""
    ids = store_results(dynamodb, uploads, head, 1)
    for claims in ({}, {"sub": "x"}, {"email": "a@b.c"}):
        assert api.call("GET", "/v1/review", "/v1/review", claims=claims)[0] == 401
        path = f"/v1/classifications/{ids[0]}/label"
        status, body = api.call("PUT", LABEL, path, {"label": head.classes[0]}, claims=claims)
        assert status == 401 and body["errors"][0]["field"] == "Authorization"
    stored = ResultsStore(TABLE, dynamodb).get(ids[0])
    assert stored is not None and stored.person_label is None


def test_a_label_is_announced_and_a_failed_announcement_keeps_the_label(
    make_api: Callable[..., ReviewApi],
    dynamodb: Any,
    uploads: Any,
    head: Head,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = event_bus_queue(events, sqs, bus="clip-events")
    ids = store_results(dynamodb, uploads, head, 2)
    assert make_api(EVENT_BUS_NAME="clip-events").label(ids[0], head.classes[2])[0] == 200
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (event,) = [json.loads(m["Body"]) for m in messages]
    validate(event)
    assert event["detail-type"] == "Label Added"
    assert event["detail"]["pictureId"] == ids[0] and event["detail"]["label"] == head.classes[2]
    assert event["detail"]["labeledBy"] == "cognito:reviewer@example.com"

    capsys.readouterr()
    status, _ = make_api(EVENT_BUS_NAME="no-such-bus").label(ids[1], head.classes[1])
    assert status == 200
    stored = ResultsStore(TABLE, dynamodb).get(ids[1])
    assert stored is not None and stored.person_label == head.classes[1]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("EventsNotPublished") == [1.0] or m.get("EventsNotPublished") == 1.0 for m in metrics)


def test_no_token_image_link_or_label_body_reaches_the_logs(
    api: ReviewApi, dynamodb: Any, uploads: Any, head: Head, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = store_results(dynamodb, uploads, head, 2)
    capsys.readouterr()
    status, page = api.queue()
    api.label(ids[0], head.classes[0])
    api.label(ids[0], "zebra")
    out = capsys.readouterr().out
    assert status == 200 and page["items"][0]["imageUrl"]
    assert "X-Amz-Signature" not in out and "zebra" not in out and "reviewer@example.com" not in out


def test_a_picture_id_with_reserved_characters_is_labelled_as_itself(
    api: ReviewApi, dynamodb: Any, head: Head
) -> None:
    """API Gateway passes path parameters percent-encoded as sent: ``a:b@c+d(1)`` must reach its own item,
    never a look-alike (``a:b@c d(1)`` with '+' read as a space)."""
    store = ResultsStore(TABLE, dynamodb)
    result = ResultFields.from_prediction(predict_one(head, np.full(512, 0.03)), head_version=head.version)
    store.put_api_results(
        [ClassificationItem.classified("a:b@c+d(1)", result, source=SourceInfo(type="api"))]
    )
    status, body = api.label("a:b@c+d(1)", head.classes[2])
    assert status == 200 and body["pictureId"] == "a:b@c+d(1)"
    stored = store.get("a:b@c+d(1)")
    assert stored is not None and stored.person_label == head.classes[2]
    assert api.label("a:b@c d(1)", head.classes[2])[0] == 404
    assert api.unlabel("a:b@c+d(1)")[0] == 200

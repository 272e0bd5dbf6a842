"""The event files under infra/events/ (the ones ``sam local invoke -e`` takes), generated here.

``python -m clip_local.events`` rewrites them; a test checks the committed files equal this output.
"""

from __future__ import annotations

import json
import random
from typing import Any

from .apigw import Route, build_event
from .paths import EVENTS_DIR

FEATURE_DIM = 512
#: The heads infra/events/evaluate_*.json name (registered by the tests that feed those events in).
EVALUATED_HEADS = {
    "candidate": "b860602823ef883571842a3476da8eacca8a6b6396df09a813c7a741d10eb3f6",  # reseeded_head(seed=1)
    "active": "1a610b8d8b7f20704ead029b62555d43f5009eb80f6d1ff01a065e4d58e462e1",  # weights/example/example_head.json
}


def sample_features(seed: int, dim: int = FEATURE_DIM) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(0.0, 0.05), 6) for _ in range(dim)]


#: The claims API Gateway's Cognito authorizer passes for a signed-in reviewer (the token itself is not sent
#: on to the function's event files: a real one would expire).
REVIEWER_CLAIMS = {
    "sub": "5f0c3e1a-0000-4000-8000-000000000001",
    "email": "reviewer@example.com",
    "email_verified": "true",
    "cognito:username": "5f0c3e1a-0000-4000-8000-000000000001",
    "token_use": "id",
    "aud": "exampleclientid0000000000",
    "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
}


def _api(
    method: str,
    resource: str,
    path: str,
    body: Any = None,
    *,
    query: str = "",
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    credential = (
        ("x-api-key", "local-dev-key") if claims is None else ("authorization", "<a reviewer's ID token>")
    )
    headers = {credential[0]: credential[1], "host": "localhost"}
    raw = b""
    if body is not None:
        headers["content-type"] = "application/json"
        raw = json.dumps(body, separators=(",", ":")).encode()
    event = build_event(method, Route.of(method, resource), path, headers, raw, query, claims=claims)
    # Fixed ids so the files are stable.
    event["requestContext"]["requestId"] = "00000000-0000-0000-0000-000000000000"
    event["requestContext"]["requestTimeEpoch"] = 1767225600000
    return event


def s3_event(
    event_name: str,
    bucket: str,
    key_encoded: str,
    *,
    size: int = 0,
    etag: str = "",
    sequencer: str,
    version_id: str | None = None,
) -> dict[str, Any]:
    """An S3 notification record as S3 sends it (keys URL-encoded with '+' for spaces)."""
    obj: dict[str, Any] = {"key": key_encoded, "sequencer": sequencer}
    if event_name.startswith("ObjectCreated"):
        obj.update(size=size, eTag=etag)
    if version_id:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "UploadClassifier",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "EXAMPLE"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def all_events() -> dict[str, dict[str, Any]]:
    return {
        "api_score_single.json": _api(
            "POST", "/v1/scores", "/v1/scores", {"pictureId": "sample-001", "features": sample_features(1)}
        ),
        "api_score_batch.json": _api(
            "POST",
            "/v1/scores",
            "/v1/scores",
            {
                "items": [
                    {"pictureId": "sample-101", "features": sample_features(101)},
                    {"pictureId": "sample-102", "features": sample_features(102)},
                    {"features": sample_features(103)},
                ]
            },
        ),
        "api_score_wrong_length.json": _api(
            "POST", "/v1/scores", "/v1/scores", {"features": sample_features(2, FEATURE_DIM - 1)}
        ),
        "api_get_classification.json": _api(
            "GET", "/v1/classifications/{pictureId}", "/v1/classifications/sample-001"
        ),
        "api_get_model.json": _api("GET", "/v1/model", "/v1/model"),
        # The reviewers' routes, as API Gateway passes them after the Cognito authorizer let them in.
        "api_review_queue.json": _api(
            "GET", "/v1/review", "/v1/review", query="limit=20", claims=REVIEWER_CLAIMS
        ),
        "api_put_label.json": _api(
            "PUT",
            "/v1/classifications/{pictureId}/label",
            "/v1/classifications/sample-001/label",
            {"label": "pet"},
            claims=REVIEWER_CLAIMS,
        ),
        "api_delete_label.json": _api(
            "DELETE",
            "/v1/classifications/{pictureId}/label",
            "/v1/classifications/sample-001/label",
            claims=REVIEWER_CLAIMS,
        ),
        "s3_object_created.json": {
            "Records": [
                s3_event(
                    "ObjectCreated:Put",
                    "clip-uploads-local",
                    "uploads/sample+photo.jpg",
                    size=1234,
                    etag="0123456789abcdef0123456789abcdef",
                    sequencer="0065A1B2C3D4E5F601",
                )
            ]
        },
        # What S3 sends once when a notification configuration is saved.
        "s3_test_event.json": {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2026-01-01T00:00:00.000Z",
            "Bucket": "clip-uploads-local",
            "RequestId": "EXAMPLE",
            "HostId": "EXAMPLE",
        },
        # One child of the backfill's Distributed Map (listObjectsV2 items, ItemBatcher's BatchInput).
        "backfill_batch.json": {
            "Items": [
                {
                    "Etag": '"0123456789abcdef0123456789abcdef"',
                    "Key": "uploads/sample photo.jpg",
                    "LastModified": 1767225600,
                    "Size": 1234,
                    "StorageClass": "STANDARD",
                },
                {
                    "Etag": '"fedcba9876543210fedcba9876543210"',
                    "Key": "uploads/notes.txt",
                    "LastModified": 1767225600,
                    "Size": 10,
                    "StorageClass": "STANDARD",
                },
            ],
            "BatchInput": {
                "source": "listing",
                "bucket": "clip-uploads-local",
                "startedAt": "2026-01-01T00:00:00.000Z",
            },
        },
        # The first call of one rescore segment's loop, and the run's closing manifest step.
        "rescore_segment.json": {"runId": "sample-run", "segment": 0, "totalSegments": 4},
        "rescore_manifest.json": {"action": "manifest", "runId": "sample-run"},
        # A shadow evaluation's first call of one segment, and its closing report: the candidate is the
        # example head re-drawn with seed 1 (clip_local.heads.reseeded_head), against the example head.
        "evaluate_segment.json": {
            "action": "segment",
            "runId": "sample-evaluation",
            "segment": 0,
            "totalSegments": 4,
            **EVALUATED_HEADS,
        },
        "evaluate_report.json": {"action": "report", "runId": "sample-evaluation", **EVALUATED_HEADS},
        "s3_object_removed.json": {
            "Records": [
                s3_event(
                    "ObjectRemoved:Delete",
                    "clip-uploads-local",
                    "uploads/sample+photo.jpg",
                    sequencer="0065A1B2C3D4E5F702",
                )
            ]
        },
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    EVENTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, event in all_events().items():
        (EVENTS_DIR / name).write_text(render(event), encoding="utf-8")
        print(f"wrote infra/events/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

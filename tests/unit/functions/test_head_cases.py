"""The head corpus (``tests/corpus/heads.py``) through both functions, on moto: a refused head is a named
weights error in the API (a strict-JSON 500, never invalid JSON) and in the upload function (a classifier
error for every record, so all of an event's records are tried before the event is retried, then
dead-lettered); a head that parses but could overflow or underflow is served with finite results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from clip_classifier.exceptions import WeightsError
from clip_local.apigw import LambdaContext, Route, build_event
from clip_local.handlers import load_function
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT
from clip_local.template import create_bucket
from tests.conftest import MODEL_BUCKET, WEIGHTS_KEY, ScoreApi, build_upload
from tests.corpus.heads import HeadCase, head_cases

CASES = head_cases(dim=512)
REFUSED = [c for c in CASES if c.outcome != "served"]
SERVED = [c for c in CASES if c.outcome == "served"]
BUCKET = "uploads-bucket"
JPEG = (REPO_ROOT / "tests" / "fixtures" / "images" / "landscape_rgb.jpg").read_bytes()


def strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} in a response")

    return json.loads(text, parse_constant=refuse)


def get_model(api: ScoreApi) -> tuple[int, Any]:
    event = build_event("GET", Route.of("GET", "/v1/model"), "/v1/model", {}, b"")
    response = api.handler(event, LambdaContext())
    return response["statusCode"], strict(response["body"])


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_the_api_refuses_a_bad_head_with_its_code(
    case: HeadCase, s3: Any, make_score_api: Callable[..., ScoreApi]
) -> None:
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=case.make())
    api = make_score_api(WEIGHTS_URI=f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}")
    status, body = get_model(api)
    assert status == 500 and body["code"] == case.outcome
    status, body = api.post({"features": [0.01] * 512})
    assert status == 500 and body["code"] == case.outcome


@pytest.mark.parametrize("case", SERVED, ids=[c.name for c in SERVED])
def test_the_api_serves_an_extreme_head_finitely(
    case: HeadCase, s3: Any, make_score_api: Callable[..., ScoreApi]
) -> None:
    s3.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=case.make())
    api = make_score_api(WEIGHTS_URI=f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}")
    rng = np.random.default_rng(0)
    items = [{"features": (rng.normal(size=512) * scale).tolist()} for scale in (1e-30, 1.0, 1e30)]
    status, body = api.post({"items": items})
    assert status == 200
    for result in body["items"]:
        assert abs(sum(result["probabilities"].values()) - 1.0) < 1e-5


@pytest.fixture
def bucket(dynamodb: Any, weights_uri: str) -> Any:
    s3 = boto3.client("s3")
    create_bucket(s3, BUCKET)
    return s3


def event(s3: Any, *keys: str) -> dict[str, Any]:
    records = []
    for i, key in enumerate(keys):
        put = s3.put_object(Bucket=BUCKET, Key=key, Body=JPEG)
        records.append(
            {
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                       "object": {"key": key, "size": len(JPEG), "eTag": put["ETag"].strip('"'),
                                  "sequencer": f"{i + 1:02X}"}},
            }
        )  # fmt: skip
    return {"Records": records}


@pytest.mark.parametrize("case", REFUSED[:6], ids=[c.name for c in REFUSED[:6]])
def test_a_bad_head_swapped_in_under_the_upload_function_fails_every_record_with_its_code(
    case: HeadCase, bucket: Any, weights_uri: str, tmp_path: Path
) -> None:
    upload = build_upload(
        tmp_path, WEIGHTS_URI=weights_uri, UPLOAD_BUCKET=BUCKET, WEIGHTS_REFRESH_SECONDS="0"
    )
    tried: list[str] = []
    process = upload.classifier.process
    upload.classifier.process = lambda e, d=None: tried.append(e.key) or process(e, d)  # type: ignore[method-assign]
    handler = load_function("classify_upload").create_handler(upload)
    bucket.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=case.make())
    with pytest.raises(WeightsError) as info:
        handler(event(bucket, "uploads/a.jpg", "uploads/b.jpg"), LambdaContext())
    assert info.value.code == case.outcome and tried == ["uploads/a.jpg", "uploads/b.jpg"]


@pytest.mark.parametrize("case", SERVED, ids=[c.name for c in SERVED])
def test_the_upload_function_classifies_with_an_extreme_head_finitely(
    case: HeadCase, bucket: Any, tmp_path: Path
) -> None:
    bucket.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=case.make())
    upload = build_upload(tmp_path, WEIGHTS_URI=f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}", UPLOAD_BUCKET=BUCKET)
    handler = load_function("classify_upload").create_handler(upload)
    assert handler(event(bucket, "uploads/a.jpg"), LambdaContext())["outcomes"] == {"classified": 1}
    item = upload.classifier.store.get("a.jpg")
    assert item is not None and item.probabilities is not None
    assert abs(sum(item.probabilities.values()) - 1.0) < 1e-5


def test_the_example_head_is_still_served(bucket: Any, tmp_path: Path) -> None:
    bucket.put_object(Bucket=MODEL_BUCKET, Key=WEIGHTS_KEY, Body=EXAMPLE_WEIGHTS.read_bytes())
    upload = build_upload(tmp_path, WEIGHTS_URI=f"s3://{MODEL_BUCKET}/{WEIGHTS_KEY}", UPLOAD_BUCKET=BUCKET)
    assert len(upload.classifier.weights.get().classes) == 12

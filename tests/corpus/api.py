"""The bad-input API corpus: each case states its expected status and message for POST /v1/scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from clip_local.events import sample_features

V = sample_features(7)


@dataclass(frozen=True)
class ApiCase:
    case: str
    raw: bytes
    status: int
    message: str
    content_type: str = "application/json"


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


def api_cases() -> list[ApiCase]:
    return [
        ApiCase("511 numbers", j({"features": V[:-1]}), 422, "features must have 512 numbers, got 511"),
        ApiCase("513 numbers", j({"features": [*V, 0.1]}), 422, "features must have 512 numbers, got 513"),
        ApiCase("one number", j({"features": [1.0]}), 422, "features must have 512 numbers, got 1"),
        ApiCase("empty features", j({"features": []}), 422, "features must have at least 1 entries"),
        ApiCase(
            "4097 numbers", j({"features": [0.1] * 4097}), 422, "features must have at most 4096 entries"
        ),
        ApiCase(
            "NaN literal",
            j({"features": [*V[:9], float("nan"), *V[10:]]}),
            422,
            "features[9] is not a finite number",
        ),
        ApiCase(
            "Infinity literal",
            j({"features": [float("inf"), *V[1:]]}),
            422,
            "features[0] is not a finite number",
        ),
        ApiCase(
            "-Infinity literal",
            j({"features": [*V[:-1], float("-inf")]}),
            422,
            "features[511] is not a finite number",
        ),
        ApiCase(
            "'NaN' as a string",
            j({"features": [*V[:17], "NaN", *V[18:]]}),
            422,
            "features[17] must be a number",
        ),
        ApiCase(
            "'Infinity' as a string",
            j({"features": [*V[:4], "Infinity", *V[5:]]}),
            422,
            "features[4] must be a number",
        ),
        ApiCase(
            "number as a string",
            j({"features": [*V[:2], "0.5", *V[3:]]}),
            422,
            "features[2] must be a number",
        ),
        ApiCase(
            "boolean in features",
            j({"features": [*V[:3], True, *V[4:]]}),
            422,
            "features[3] must be a number",
        ),
        ApiCase(
            "null in features", j({"features": [*V[:3], None, *V[4:]]}), 422, "features[3] must be a number"
        ),
        ApiCase("nested arrays", j({"features": [V]}), 422, "features[0] must be a number"),
        ApiCase("features as a string", j({"features": "0.1,0.2"}), 422, "features must be an array"),
        ApiCase("features null", j({"features": None}), 422, "features must be an array, not null"),
        ApiCase("items null", j({"items": None}), 422, "items must be an array, not null"),
        ApiCase("features as an object", j({"features": {"0": 0.1}}), 422, "features must be an array"),
        ApiCase(
            "missing features and items",
            j({"pictureId": "p1"}),
            422,
            "send exactly one of 'features' (one vector) or 'items' (a batch)",
        ),
        ApiCase("empty object", j({}), 422, "send exactly one of"),
        ApiCase(
            "both features and items",
            j({"features": V, "items": [{"features": V}]}),
            422,
            "send exactly one of",
        ),
        ApiCase(
            "pictureId beside items",
            j({"pictureId": "p", "items": [{"features": V}]}),
            422,
            "'pictureId' goes inside each entry of 'items'",
        ),
        ApiCase(
            "extra top-level field",
            j({"features": V, "extra": 1}),
            422,
            "extra is not a field of this request",
        ),
        ApiCase(
            "a misspelt field",
            j({"featurs": V}),
            422,
            "featurs is not a field of this request (did you mean 'features'?)",
        ),
        ApiCase(
            "a misspelt field in an item",
            j({"items": [{"pictureid": "p", "features": V}]}),
            422,
            "items[0].pictureid is not a field of this request (did you mean 'pictureId'?)",
        ),
        ApiCase(
            "extra field in an item",
            j({"items": [{"features": V, "nested": {}}]}),
            422,
            "items[0].nested is not a field of this request",
        ),
        ApiCase(
            "pictureId with a slash",
            j({"pictureId": "a/b", "features": V}),
            422,
            "pictureId has characters that are not allowed",
        ),
        ApiCase(
            "pictureId with a space",
            j({"pictureId": "a b", "features": V}),
            422,
            "pictureId has characters that are not allowed",
        ),
        ApiCase(
            "pictureId with unicode",
            j({"pictureId": "été", "features": V}),
            422,
            "pictureId has characters that are not allowed",
        ),
        ApiCase(
            "pictureId with a control character",
            j({"pictureId": "a\u0007b", "features": V}),
            422,
            "pictureId has characters",
        ),
        ApiCase(
            "pictureId starting with a dot",
            j({"pictureId": ".hidden", "features": V}),
            422,
            "pictureId has characters",
        ),
        ApiCase("empty pictureId", j({"pictureId": "", "features": V}), 422, "pictureId has characters"),
        ApiCase(
            "pictureId of 201 characters",
            j({"pictureId": "x" * 201, "features": V}),
            422,
            "pictureId has characters",
        ),
        ApiCase(
            "pictureId as a number", j({"pictureId": 42, "features": V}), 422, "pictureId must be a string"
        ),
        ApiCase("empty batch", j({"items": []}), 422, "items must have at least 1 entries"),
        ApiCase(
            "batch of 101",
            j({"items": [{"features": V}] * 101}),
            422,
            "items must have at most 100 entries, got 101",
        ),
        ApiCase("items not an array", j({"items": {"features": V}}), 422, "items must be an array"),
        ApiCase("item not an object", j({"items": [V]}), 422, "items[0] must be a JSON object"),
        ApiCase(
            "one bad item in a batch",
            j({"items": [{"features": V}, {"features": V[:5]}]}),
            422,
            "items[1].features must have 512 numbers, got 5",
        ),
        ApiCase(
            "repeated pictureId in a batch",
            j({"items": [{"pictureId": "a", "features": V}, {"pictureId": "a", "features": V}]}),
            422,
            "items[1].pictureId 'a' appears more than once",
        ),
        ApiCase("all-zero vector", j({"features": [0.0] * 512}), 422, "must not be all zeros"),
        ApiCase("body is an array", j([V]), 422, "body must be a JSON object"),
        ApiCase("body is a string", j("features"), 422, "body must be a JSON object"),
        ApiCase("body is a number", j(7), 422, "body must be a JSON object"),
        ApiCase("malformed JSON", b'{"features": [0.1, ', 400, "the request body is not valid JSON"),
        ApiCase(
            "trailing garbage after JSON",
            j({"features": V}) + b"}",
            400,
            "the request body is not valid JSON",
        ),
        ApiCase("empty body", b"", 422, "body"),
        ApiCase("bytes that are not UTF-8", b'{"features": [\xff\xfe]}', 400, "not valid UTF-8 JSON"),
        ApiCase(
            "text/plain content type",
            j({"features": V}),
            415,
            "send the body as application/json",
            "text/plain",
        ),
        ApiCase(
            "form content type",
            b"features=1",
            415,
            "send the body as application/json",
            "application/x-www-form-urlencoded",
        ),
        ApiCase(
            "body over the limit",
            j({"items": [{"features": [0.123456789012345] * 4096}] * 100}),
            413,
            "the limit is 2097152",
        ),
    ]


if __name__ == "__main__":
    for c in api_cases():
        print(f"{c.case:<36} {c.status}  {c.message}")

"""A bounded mutation fuzz of the API body parser (issue 9, proof): valid request bodies with bytes flipped,
inserted, deleted or truncated, and JSON syntax spliced in, go through the real handler. Every answer is a
documented status with a JSON body that strict parsers accept; a refused body stores nothing; an accepted
one stores exactly what it answered."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import numpy as np
import pytest

from clip_local.apigw import LambdaContext, Route, build_event
from tests.conftest import ScoreApi, scan_count
from tests.helpers import mutate

MUTANTS_PER_SEED = 120
#: Fragments that reach the parser's bounded corners: nesting, huge numbers, non-finite constants,
#: escapes, unpaired surrogates, duplicate keys and type confusion.
TOKENS = (
    b"[",
    b"{",
    b'"',
    b",",
    b":",
    b"1e400",
    b"-0",
    b"9" * 30,
    b"NaN",
    b"-Infinity",
    b"null",
    b"true",
    b"\\u0000",
    b"\\ud800",
    b'"features":[]',
    b'"pictureId":"a/b"',
    b"\xc3\x28",
    b"\xef\xbb\xbf",
)
#: Whole JSON values spliced in place of a number or a string, so a mutant stays parseable and reaches
#: the validation behind the parser: wrong types, out-of-range numbers, odd ids and nesting.
VALUES = (
    b'"0.5"',
    b"null",
    b"true",
    b"[]",
    b"[1.0]",
    b"{}",
    b"1e39",
    b"-3.5e38",
    b"1e-400",
    b"4e-45",
    b"0",
    b"1" * 25,
    b'"bad id"',
    b'"\\u00e9t\\u00e9"',
    b'"' + b"x" * 201 + b'"',
)
SPLICE_POINTS = re.compile(rb'-?\d+\.?\d*(?:e-?\d+)?|"[^"]*"')
DOCUMENTED = {200, 400, 409, 413, 415, 422}


def _vector(seed: int) -> list[float]:
    return [round(float(v), 6) for v in np.random.default_rng(seed).normal(size=512)]


SEEDS: dict[str, bytes] = {
    "single": json.dumps({"pictureId": "fuzz-1", "features": _vector(1)}).encode(),
    "anonymous": json.dumps({"features": _vector(2)}).encode(),
    "batch": json.dumps(
        {"items": [{"pictureId": "fuzz-a", "features": _vector(3)}, {"features": _vector(4)}]}
    ).encode(),
}


def splice(data: bytes, rng: random.Random) -> bytes:
    """One to three numbers or strings of ``data`` replaced by values from :data:`VALUES`."""
    points = list(SPLICE_POINTS.finditer(data))
    chosen = sorted(rng.sample(points, rng.randint(1, 3)), key=lambda m: m.start(), reverse=True)
    raw = bytearray(data)
    for match in chosen:
        raw[match.start() : match.end()] = rng.choice(VALUES)
    return bytes(raw)


def _strict(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"response holds the non-JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("seed_name", list(SEEDS))
def test_mutated_bodies_get_a_documented_answer_and_store_only_what_was_accepted(
    api: ScoreApi, dynamodb: Any, seed_name: str
) -> None:
    rng = random.Random(f"api-fuzz-{seed_name}")
    statuses: dict[int, int] = {}
    for _ in range(MUTANTS_PER_SEED):
        before = scan_count(dynamodb)
        raw = (
            mutate(SEEDS[seed_name], rng, header=len(SEEDS[seed_name]), tokens=TOKENS)
            if rng.random() < 0.5
            else splice(SEEDS[seed_name], rng)
        )
        event = build_event(
            "POST", Route.of("POST", "/v1/scores"), "/v1/scores", {"content-type": "application/json"}, raw
        )
        response = api.handler(event, LambdaContext())
        status, body = response["statusCode"], _strict(response["body"])
        statuses[status] = statuses.get(status, 0) + 1
        assert status in DOCUMENTED, (status, body, raw[:200])
        stored = scan_count(dynamodb) - before
        if status == 200:
            results = body.get("items", [body])
            for result in results:
                assert abs(sum(result["probabilities"].values()) - 1) <= 1e-6
            assert stored <= sum(1 for r in results if r["stored"])
        else:
            assert {"code", "message"} <= set(body), body
            assert stored == 0, f"a refused body stored {stored} item(s)"
    assert sum(statuses.values()) == MUTANTS_PER_SEED
    # The mutations reach the parser's refusals, the validation's and valid bodies alike.
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and statuses.get(422, 0) > 0, statuses

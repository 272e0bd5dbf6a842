"""Shared test helpers: fault injection around real boto3 clients, weights documents, events."""

from __future__ import annotations

import copy
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from clip_local.paths import EVENTS_DIR, EXAMPLE_WEIGHTS

GOLDEN_HEAD = EXAMPLE_WEIGHTS.with_name("golden_head.json")


def client_error(code: str, status: int, operation: str = "Operation") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


class FaultyClient:
    """A real boto3 client whose named operations first raise the queued errors, then behave normally.

    ``responses`` queues, per operation, functions applied to the next real responses (e.g. a body that
    breaks half-way).
    """

    def __init__(self, client: Any, **faults: list[BaseException]) -> None:
        self._client = client
        self.faults = {name: list(errors) for name, errors in faults.items()}
        self.responses: dict[str, list[Callable[[Any], Any]]] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            queue = self.faults.get(name)
            if queue:
                raise queue.pop(0)
            response = real(*args, **kwargs)
            transforms = self.responses.get(name)
            return transforms.pop(0)(response) if transforms else response

        return call


@dataclass
class SpyBody:
    """Wraps a real body: counts the bytes read and whether it was closed."""

    real: Any
    read_bytes: int = 0
    closed: bool = False

    def read(self, amt: int | None = None) -> bytes:
        chunk: bytes = self.real.read(amt)
        self.read_bytes += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True
        self.real.close()


def event_bus_queue(events: Any, sqs: Any, bus: str = "clip-events", name: str = "events-seen") -> str:
    """A queue that a rule on ``bus`` (created here if it does not exist) delivers every clip-classifier
    event to, as a webhook's rule would: its URL, to read what was published."""
    if bus not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
        events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=f"{name}-all", EventBusName=bus, EventPattern=json.dumps({"source": ["clip-classifier"]})
    )
    events.put_targets(Rule=f"{name}-all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return str(queue)


class BreakingBody:
    """A body that delivers ``after`` bytes of the real one and then fails as a dropped connection would."""

    def __init__(self, data: bytes, after: int, error: Exception) -> None:
        self._data, self._after, self._error = data, after, error
        self._pos = 0

    def read(self, amt: int | None = None) -> bytes:
        if amt is None:
            amt = len(self._data)
        if self._pos + amt > self._after:
            raise self._error
        chunk = self._data[self._pos : self._pos + amt]
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


def break_body(after: float, error: Exception) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A ``FaultyClient.responses`` entry: the GetObject body fails after that fraction of its bytes."""

    def transform(response: dict[str, Any]) -> dict[str, Any]:
        data = response["Body"].read()
        return {**response, "Body": BreakingBody(data, int(len(data) * after), error)}

    return transform


def truncate_body(after: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A ``FaultyClient.responses`` entry: the connection closes early; botocore sees the short length."""
    from botocore.response import StreamingBody

    def transform(response: dict[str, Any]) -> dict[str, Any]:
        data = response["Body"].read()
        short = io.BytesIO(data[: int(len(data) * after)])
        return {**response, "Body": StreamingBody(short, len(data))}

    return transform


def example_doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE_WEIGHTS.read_text())
    return data


def small_doc(**changes: Any) -> dict[str, Any]:
    """A tiny valid-shaped MLP document (4 → 3 → 2) with its content hash recomputed."""
    doc: dict[str, Any] = {
        "format": "clip-head-weights",
        "format_version": 1,
        "head_type": "mlp",
        "classes": ["a", "b"],
        "input_dim": 4,
        "input_normalization": "none",
        "layers": [
            {
                "type": "linear",
                "weight": [[0.1, -0.2, 0.3, 0.4], [0.5, 0.6, -0.7, 0.8], [0.0, 0.1, 0.2, 0.3]],
                "bias": [0.0, 0.1, -0.1],
            },
            {"type": "relu"},
            {"type": "linear", "weight": [[1.0, -1.0, 0.5], [0.25, 0.75, -0.5]], "bias": [0.2, -0.2]},
            {"type": "sigmoid"},
        ],
        "output": "sigmoid_normalized",
        "provenance": {"created_at": "2026-01-01T00:00:00Z", "training": {"note": "test"}},
        "content_sha256": "0" * 64,
    }
    doc.update(changes)
    rehash(doc)
    return doc


def rehash(doc: dict[str, Any]) -> dict[str, Any]:
    """Recompute content_sha256 when the document is well-formed enough to hash."""
    import numpy as np

    from clip_classifier.head.weights_format import content_sha256

    try:
        linear = [
            (np.asarray(layer["weight"], dtype=np.float32), np.asarray(layer["bias"], dtype=np.float32))
            for layer in doc["layers"]
            if layer.get("type") == "linear"
        ]
        doc["content_sha256"] = content_sha256(
            classes=doc["classes"],
            input_dim=doc["input_dim"],
            input_normalization=doc["input_normalization"],
            layer_types=[layer["type"] for layer in doc["layers"]],
            linear=linear,
            output=doc["output"],
        )
    except (ValueError, KeyError, TypeError):
        pass
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def predict_one(head: Any, features: Any) -> Any:
    """The head's prediction for one vector (any array-like of ``input_dim`` numbers)."""
    import numpy as np

    return head.predict(np.asarray(features, dtype=np.float32).reshape(1, -1))[0]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return copy.deepcopy(event)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def run_export(config: str, out: Any, *extra: str) -> Any:
    """weights/export_clip_onnx.py --random-init --config CONFIG --seed 0 --out OUT [extra], as a process."""
    import subprocess
    import sys

    from clip_local.paths import REPO_ROOT

    script = REPO_ROOT / "weights" / "export_clip_onnx.py"
    command = [
        sys.executable,
        str(script),
        "--random-init",
        "--config",
        config,
        "--seed",
        "0",
        "--out",
        str(out),
    ]
    return subprocess.run([*command, *extra], capture_output=True, text=True, check=False, timeout=900)


def mutate(data: bytes, rng: random.Random, *, header: int = 512, tokens: tuple[bytes, ...] = ()) -> bytes:
    """Flip, overwrite, insert, delete or truncate a few bytes — 70 % of the time inside the first
    ``header`` bytes, where parsers make their decisions. ``tokens`` are also inserted whole (e.g. JSON
    syntax), so a mutant can reach the grammar's corners, not only broken bytes."""
    raw = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if len(raw) < 2:
            break
        limit = min(len(raw) - 1, header) if rng.random() < 0.7 else len(raw) - 1
        at = rng.randint(0, max(0, limit))
        action = rng.randrange(6 if tokens else 5)
        if action == 0:
            raw[at] ^= 1 << rng.randrange(8)
        elif action == 1:
            raw[at] = rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif action == 2:
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action == 3:
            del raw[at : at + rng.randint(1, 8)]
        elif action == 4:
            del raw[max(1, at) :]
        else:
            raw[at:at] = rng.choice(tokens) * rng.choice([1, 1, 2, 50])
    return bytes(raw)

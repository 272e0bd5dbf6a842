"""Dollars per million images for the event path, the backfill, the rescore and a shadow evaluation, from
measured figures and published prices.

    python -m bench.cost_model                                   # tiny model timings (fast, weak)
    python -m bench.cost_model --model-dir weights/models/vit-b-32/int8
    python -m bench.cost_model --image-ms 80 --memory-mb 1769    # your own measured duration
    python -m bench.cost_model --model-dir bench/.cache/vit-b-32-matmul/int8 \
        --before-model-dir bench/.cache/vit-b-32-conv/int8          # the embedder before → after too

It prints the event path before → after the cost round (one ``GetObject`` per image instead of HEAD + GET,
the codec-2 item with the int8 embedding instead of maps and float16, arm64 beside x86_64), then every
path as deployed now.

Measured here: the compute time per image (decode + preprocess + embed + head, one thread: 1,769 MB is one
vCPU) on the fixture images, the rescore's compute per item, and the DynamoDB item size with and without
the stored embedding (DynamoDB's own size rules). Assumed, and printed: the S3 and DynamoDB round trips
inside a function's billed time (``--s3-ms`` per S3 request, ``--write-ms`` per item write, ``--put-ms`` for the
rescore's update). arm64 is priced at the same duration as measured here (x86_64): Graviton's int8 speed is
not measured on this machine. Prices: us-east-1 list prices (see PRICES).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.ingest.s3_event import normalize_sequencer
from clip_classifier.model.embedder import Embedder
from clip_classifier.registry.evaluation import EvaluationFigures
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import serialize
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT, TINY_MODEL_DIR

#: us-east-1 list prices (USD), read from the services' pricing pages on 2026-12-01.
PRICES = {
    "lambda_gb_second": 0.0000166667,  # x86_64, first 6 billion GB-s a month
    "lambda_gb_second_arm64": 0.0000133334,  # arm64 (Graviton): 20 % less
    "lambda_request": 0.20 / 1e6,
    "s3_get": 0.0004 / 1000,  # GET, HEAD (S3 Standard)
    "s3_list": 0.005 / 1000,  # LIST: one request per 1,000 keys
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand write request unit (1 KB)
    "dynamodb_read_unit": 0.125 / 1e6,  # on-demand read request unit (4 KB strongly consistent)
    "sfn_transition": 0.025 / 1000,  # Standard workflows
    "sfn_express_request": 1.00 / 1e6,
    "sfn_express_gb_second": 0.00001667,  # billed in 64 MB and 100 ms steps
    "sqs_request": 0.40 / 1e6,
}
IMAGES = 1_000_000


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value (without its name)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode())
    if kind == "N":
        digits = str(Decimal(content)).lstrip("-").replace(".", "").lstrip("0").rstrip("0")
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in content)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in content.items())
    raise ValueError(f"attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (CapacityUnitCalculations in its guide)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def typical_item(
    head: Head, *, embedding: bool, layout: embedding_codec.Layout = embedding_codec.CURRENT
) -> ClassificationItem:
    """An upload's item as the upload path writes it, with realistic names and ids (``float16``: as it was
    written before the cost round, without the review queue's margin)."""
    raw = np.random.default_rng(0).normal(size=head.input_dim).astype(np.float32)
    stored, features = embedding_codec.round_trip(raw, layout)
    item = ClassificationItem.classified(
        "IMG_0042.jpg",
        ResultFields.from_prediction(head.predict(features)[0], head_version=head.version),
        source=SourceInfo(
            type="s3",
            bucket="clip-uploads-4f1c2d3e-5a6b-11f0-9c7d-0a1b2c3d4e5f",
            key="uploads/IMG_0042.jpg",
            etag="9b2cf535f27731c974343645a3985328",
            version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
            size=2_104_331,
            event_time="2026-12-01T06:12:16.123Z",
            last_modified="2026-12-01T06:12:16.000Z",
        ),
        embedder_version="a" * 64,
        embedding=stored if embedding else None,
        sequencer=normalize_sequencer("0065A1B2C3D4E5F601"),
    )
    return item.model_copy(update={"review_margin": None}) if layout == "float16" else item


def measure_image_ms(model_dirs: list[Path], head: Head) -> list[float]:
    """Median in-process milliseconds per fixture image for each model: decode + preprocess + embed + head,
    one thread. Several models are timed image by image in turn, so a noisy moment hits them alike."""
    embedders = [Embedder(d / "model.onnx", threads=1) for d in model_dirs]
    preprocessor = Preprocessor(
        embedders[0].manifest.transform, ImageLimits(max_bytes=20_000_000, max_pixels=40_000_000)
    )
    files = [p for p in sorted((REPO_ROOT / "tests" / "fixtures" / "images").iterdir()) if p.is_file()]
    times: list[list[float]] = [[] for _ in embedders]
    for _ in range(3):
        for path in files:
            data = path.read_bytes()
            for embedder, samples in zip(embedders, times, strict=True):
                start = time.perf_counter()
                _, features = embedding_codec.round_trip(embedder.embed(preprocessor(data).pixels))
                head.predict(features)
                samples.append((time.perf_counter() - start) * 1000)
    return [statistics.median(samples) for samples in times]


def measure_rescore_ms(head: Head) -> float:
    stored = [embedding_codec.encode(v) for v in np.random.default_rng(1).normal(size=(500, head.input_dim))]
    start = time.perf_counter()
    for data in stored:
        head.predict(embedding_codec.head_input(data, head.input_dim))
    return (time.perf_counter() - start) * 1000 / len(stored)


def measure_evaluate_ms(active: Head, candidate: Head, page: int = 500) -> float:
    """Milliseconds per stored item of a shadow evaluation's compute: decode the stored embedding, both
    heads on the page as one batch, the counts (:class:`EvaluationFigures`)."""
    stored = [
        embedding_codec.encode(v) for v in np.random.default_rng(2).normal(size=(2 * page, active.input_dim))
    ]
    ids = [f"p{i}" for i in range(len(stored))]
    start = time.perf_counter()
    figures = EvaluationFigures()
    for first in range(0, len(stored), page):
        batch = np.concatenate(
            [embedding_codec.head_input(d, active.input_dim) for d in stored[first : first + page]]
        )
        figures.add(ids[first : first + page], batch, active, candidate)
    return (time.perf_counter() - start) * 1000 / len(stored)


@dataclass
class Inputs:
    memory_mb: int
    image_ms: float
    rescore_ms: float
    put_ms: float
    item_bytes: int
    item_bytes_without_embedding: int
    #: One S3 request's round trip inside the billed duration, and one item write's (assumed).
    s3_ms: float = 10.0
    write_ms: float = 10.0
    #: S3 requests per image on the event path: 1 (GetObject); 2 before the cost round (HeadObject first).
    s3_requests: int = 1
    architecture: str = "x86_64"
    batch_size: int = 25
    segment_items: int = 60_000
    #: A shadow evaluation's compute per stored item (0: leave the evaluation out).
    evaluate_ms: float = 0.0

    @property
    def io_ms(self) -> float:
        return self.s3_requests * self.s3_ms + self.write_ms


def gb_second_price(architecture: str) -> float:
    return PRICES["lambda_gb_second_arm64" if architecture == "arm64" else "lambda_gb_second"]


def costs(i: Inputs) -> dict[str, dict[str, float]]:
    """$ per 1M images, by path and term."""
    p = PRICES
    gb_second = gb_second_price(i.architecture)
    gb = i.memory_mb / 1024
    item_wcu = write_units(i.item_bytes)
    event_ms = i.image_ms + i.io_ms
    s3_term = "S3 GET" if i.s3_requests == 1 else "S3 HEAD + GET"
    event = {
        "Lambda duration": IMAGES * gb * math.ceil(event_ms) / 1000 * gb_second,
        "Lambda requests": IMAGES * p["lambda_request"],
        s3_term: IMAGES * i.s3_requests * p["s3_get"],
        "DynamoDB writes": IMAGES * item_wcu * p["dynamodb_write_unit"],
    }
    batches = IMAGES / i.batch_size
    batch_ms = i.batch_size * (event_ms + i.s3_ms)  # + one HEAD of the current version per key
    backfill = {
        "Lambda duration": batches * gb * math.ceil(batch_ms) / 1000 * gb_second,
        "Lambda requests": batches * p["lambda_request"],
        # The listing has no version ids: a HEAD finds the current version, then the read.
        f"S3 HEAD + {s3_term.removeprefix('S3 ')}": IMAGES * (1 + i.s3_requests) * p["s3_get"],
        "S3 LIST": IMAGES / 1000 * p["s3_list"],
        "DynamoDB reads (BatchGetItem)": IMAGES * math.ceil(i.item_bytes / 4096) * p["dynamodb_read_unit"],
        "DynamoDB writes": IMAGES * item_wcu * p["dynamodb_write_unit"],
        # A Distributed Map bills a parent transition per child; each child is one Express execution.
        "Step Functions": batches * (p["sfn_transition"] + p["sfn_express_request"])
        + batches * 0.0625 * math.ceil(batch_ms / 100) / 10 * p["sfn_express_gb_second"],
    }
    item_ms = i.rescore_ms + i.put_ms
    calls = IMAGES / i.segment_items
    rescore = {
        "Lambda duration": IMAGES * 1.0 * item_ms / 1000 * gb_second,  # 1,024 MB
        "Lambda requests": calls * p["lambda_request"],
        "DynamoDB scan reads": IMAGES * i.item_bytes / 4096 * 0.5 * p["dynamodb_read_unit"],
        "DynamoDB writes": IMAGES * item_wcu * p["dynamodb_write_unit"],
        "Step Functions": calls * 3 * p["sfn_transition"],
    }
    table = {"event path": event, "backfill": backfill, "rescore": rescore}
    if i.evaluate_ms:
        # Both heads on every stored item, nothing written: the scan, the compute, a part per call.
        table["evaluation"] = {
            "Lambda duration": IMAGES * 1.0 * i.evaluate_ms / 1000 * gb_second,  # 1,024 MB
            "Lambda requests": calls * p["lambda_request"],
            "DynamoDB scan reads": IMAGES * i.item_bytes / 4096 * 0.5 * p["dynamodb_read_unit"],
            "S3 parts + report": (calls + 1) * 0.005 / 1000 + calls * p["s3_get"],
            "Step Functions": calls * 3 * p["sfn_transition"],
        }
    return table


def compare(before: Inputs, after: Inputs, arm: Inputs) -> str:
    """The event path, term by term: before the cost round → after it, at x86_64 and at arm64."""
    columns = [costs(before)["event path"], costs(after)["event path"], costs(arm)["event path"]]
    terms = [
        ("Lambda duration", "Lambda duration"),
        ("Lambda requests", "Lambda requests"),
        ("S3 HEAD + GET", "S3 GET"),
        ("DynamoDB writes", "DynamoDB writes"),
    ]
    lines = [
        "event path, $ per 1M images: before (HEAD + GET, codec 1 item with float16 embedding) → after "
        "(one GET, codec 2 item with int8 embedding)",
        f"compute per image {before.image_ms:.1f} ms → {after.image_ms:.1f} ms",
        f"item {before.item_bytes} B = {write_units(before.item_bytes)} write units → "
        f"{after.item_bytes} B = {write_units(after.item_bytes)}; "
        f"S3 round trips {before.s3_requests} → {after.s3_requests} ({before.s3_ms:.0f} ms each, assumed)",
        "",
        f"{'term':<20} {'before':>9} {'after x86_64':>13} {'after arm64':>12}",
        "-" * 57,
    ]
    for old, new in terms:
        lines.append(f"{new:<20} {columns[0][old]:>9.2f} {columns[1][new]:>13.2f} {columns[2][new]:>12.2f}")
    totals = [sum(c.values()) for c in columns]
    lines.append(f"{'total':<20} {totals[0]:>9.2f} {totals[1]:>13.2f} {totals[2]:>12.2f}")
    return "\n".join(lines)


def render(i: Inputs, table: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{i.architecture}, memory {i.memory_mb} MB; per image {i.image_ms:.1f} ms compute + {i.io_ms:.0f} ms "
        "S3/DynamoDB (assumed); "
        f"rescore {i.rescore_ms * 1000:.0f} µs + {i.put_ms:.0f} ms PutItem (assumed) per item; "
        f"evaluation {i.evaluate_ms * 1000:.0f} µs per item (both heads, no write)",
        f"item {i.item_bytes} B = {write_units(i.item_bytes)} write units with the embedding; "
        f"{i.item_bytes_without_embedding} B = {write_units(i.item_bytes_without_embedding)} without",
        "",
        f"{'path':<12} {'term':<32} {'$ per 1M images':>16}",
        "-" * 62,
    ]
    for path, terms in table.items():
        total = sum(terms.values())
        for term, dollars in sorted(terms.items(), key=lambda kv: -kv[1]):
            share = f"{dollars / total:.0%}" if total else ""
            lines.append(f"{path:<12} {term:<32} {dollars:>10.2f} {share:>5}")
        top = max(terms, key=lambda t: terms[t])
        lines.append(f"{path:<12} {'total (dominant: ' + top + ')':<32} {total:>10.2f}")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=TINY_MODEL_DIR / "int8")
    parser.add_argument("--memory-mb", type=int, default=1769, help="UploadMemorySize (1769 = 1 vCPU)")
    parser.add_argument(
        "--image-ms", type=float, default=None, help="skip the measurement: compute ms per image"
    )
    parser.add_argument("--s3-ms", type=float, default=10.0, help="one S3 request inside the duration")
    parser.add_argument("--write-ms", type=float, default=10.0, help="the item's conditional PutItem")
    parser.add_argument(
        "--put-ms", type=float, default=5.0, help="one DynamoDB UpdateItem round trip (rescore)"
    )
    parser.add_argument("--architecture", choices=("x86_64", "arm64"), default="x86_64")
    parser.add_argument(
        "--before-model-dir",
        type=Path,
        help="the export before the cost round (Conv patch embedding): its measured ms for the 'before' column",
    )
    args = parser.parse_args(argv)
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    measured = [args.model_dir] + ([args.before_model_dir] if args.before_model_dir else [])
    # [after, before]: the same figure twice unless --before-model-dir gives the previous export to time.
    times = [args.image_ms] if args.image_ms is not None else measure_image_ms(measured, head)
    image_ms = [times[0], times[-1]]
    inputs = Inputs(
        memory_mb=args.memory_mb,
        image_ms=image_ms[0],
        s3_ms=args.s3_ms,
        write_ms=args.write_ms,
        rescore_ms=measure_rescore_ms(head),
        evaluate_ms=measure_evaluate_ms(head, Head(parse_weights(reseeded_head(EXAMPLE_WEIGHTS, seed=1)))),
        put_ms=args.put_ms,
        item_bytes=item_size(serialize(typical_item(head, embedding=True))),
        item_bytes_without_embedding=item_size(serialize(typical_item(head, embedding=False))),
        architecture=args.architecture,
    )
    before = replace(
        inputs,
        image_ms=image_ms[1],
        s3_requests=2,
        architecture="x86_64",
        item_bytes=item_size(serialize(typical_item(head, embedding=True, layout="float16"), codec=1)),
    )
    x86 = replace(inputs, architecture="x86_64")
    print(compare(before, x86, replace(inputs, architecture="arm64")))
    print()
    print(render(inputs, costs(inputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

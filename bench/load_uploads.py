"""Load and concurrency through the local stack, then reconcile the table against what was uploaded.

    python bench/load_uploads.py                 # 2,000 uploads, 3 worker processes
    python bench/load_uploads.py -n 300 -w 2     # smaller

What is sent: N uploads of distinct small images (a few per cent broken on purpose, which must end as
``failed`` items), a share of keys uploaded twice (two versions: the newer must win), a share of events
delivered twice (duplicates), all deliveries shuffled (out of order) and consumed by several worker
processes, each its own "Lambda instance" with its own model, cache and clients.

Reconciliation: every key has exactly one item; multi-version keys hold the newest version; broken
images are ``failed`` with the expected reason; nothing is in the dead-letter queue; lost = 0.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from clip_classifier.storage.item_codec import deserialize
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.stack import local_stack
from clip_local.workers import invoke, worker_pool


@dataclass
class Report:
    sent_uploads: int = 0
    deliveries: int = 0
    duplicates_sent: int = 0
    versioned_keys: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    classified: int = 0
    lost: int = 0
    wrong_version: int = 0
    wrong_status: int = 0
    dead_lettered: int = 0
    retried_deliveries: int = 0
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, Any]]:
        return [
            ("uploads (objects written)", self.sent_uploads),
            ("deliveries (events invoked)", self.deliveries),
            ("  duplicates sent", self.duplicates_sent),
            ("  keys with two versions", self.versioned_keys),
            ("final items: classified", self.classified),
            *((f"final items: failed ({reason})", n) for reason, n in sorted(self.failed_by_reason.items())),
            ("duplicates absorbed", self.outcomes.get("duplicate", 0)),
            ("superseded (older version events)", self.outcomes.get("superseded", 0)),
            ("deliveries retried", self.retried_deliveries),
            ("dead-lettered", self.dead_lettered),
            ("wrong final version", self.wrong_version),
            ("wrong final status", self.wrong_status),
            ("lost", self.lost),
            ("wall time (s)", round(self.seconds, 1)),
            ("throughput (deliveries/s)", round(self.deliveries / self.seconds, 1) if self.seconds else 0),
        ]

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0 and self.wrong_version == 0 and self.wrong_status == 0 and self.dead_lettered == 0
        )


def small_image(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG" if seed % 2 else "PNG")
    return buf.getvalue()


def run(
    n: int,
    workers: int,
    seed: int = 0,
    broken_share: float = 0.03,
    versioned_share: float = 0.05,
    duplicate_share: float = 0.1,
) -> Report:
    rng = random.Random(seed)
    report = Report()
    with local_stack(quiet=True) as stack:
        expected: dict[str, tuple[str, str | None]] = {}  # key -> (status, etag or failure code)
        deliveries: list[dict[str, Any]] = []
        for i in range(n):
            key = f"{stack.key_prefix}load/{i:05d}.{'jpg' if i % 2 else 'png'}"
            broken = rng.random() < broken_share
            data = b"not an image at all" if broken else small_image(seed * 1_000_003 + i)
            event = stack.uploads.put_event(key, data)
            report.sent_uploads += 1
            deliveries.append(event)
            if broken:
                expected[key] = ("failed", "image_unsupported")
                continue
            expected[key] = ("classified", event["Records"][0]["s3"]["object"]["eTag"])
            if rng.random() < versioned_share:  # a second version of the same key: it must win
                newer = stack.uploads.put_event(key, small_image(seed * 7_000_003 + i))
                report.sent_uploads += 1
                report.versioned_keys += 1
                deliveries.append(newer)
                expected[key] = ("classified", newer["Records"][0]["s3"]["object"]["eTag"])
        duplicates = [d for d in deliveries if rng.random() < duplicate_share]
        report.duplicates_sent = len(duplicates)
        deliveries += duplicates
        rng.shuffle(deliveries)  # out of order, as S3 does not promise order
        report.deliveries = len(deliveries)

        start = time.perf_counter()
        with (
            tempfile.TemporaryDirectory() as caches,
            worker_pool(
                workers,
                stack.upload_env,
                stack.aws.endpoint,
                stack.dead_letter_queue_url,
                stack.invoker.max_retry_attempts,
                caches,
            ) as pool,
        ):
            for future in as_completed([pool.submit(invoke, d) for d in deliveries]):
                ok, attempts, outcomes = future.result()
                report.outcomes.update(outcomes)
                report.retried_deliveries += attempts > 1
                report.dead_lettered += not ok
        report.seconds = time.perf_counter() - start

        dynamodb = stack.client("dynamodb")
        items: dict[str, Any] = {}
        for page in dynamodb.get_paginator("scan").paginate(TableName=stack.table):
            for raw in page["Items"]:
                stored = deserialize(raw)
                items[stored.picture_id] = stored
        for key, (status, detail) in expected.items():
            record = items.get(picture_id_for_key(key, stack.key_prefix))
            if record is None:
                report.lost += 1
            elif record.status != status:
                report.wrong_status += 1
            elif status == "classified":
                report.classified += 1
                report.wrong_version += record.source.etag != detail
            else:
                report.failed_by_reason[record.error.code if record.error else "?"] += 1
                report.wrong_status += bool(record.error is None or record.error.code != detail)
    return report


def render(report: Report) -> str:
    lines = [f"{'measure':<38} {'value':>10}", "-" * 50]
    lines += [f"{name:<38} {value!s:>10}" for name, value in report.rows()]
    lines.append(f"{'reconciliation':<38} {'OK' if report.ok else 'FAILED':>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="uploads (default 2000)")
    parser.add_argument("-w", "--workers", type=int, default=3, help="worker processes (Lambda instances)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    report = run(args.n, args.workers, args.seed)
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

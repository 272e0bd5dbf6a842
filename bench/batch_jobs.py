"""Backfill and rescore at scale on the local stack, with uploads and deletes racing the backfill, then
reconciled against S3 itself.

    python -m bench.batch_jobs                   # 10,000 objects, the template's batch size, 4 workers
    python -m bench.batch_jobs -n 500 -w 2       # smaller

1. ``n`` objects (distinct small images, ~1 % broken) are put in the upload bucket without notifications:
   objects from before the stack.
2. The backfill state machine runs (the committed definition: batches of ``BackfillBatchSize`` keys, its
   functions in ``workers`` processes). While it runs, new versions of ~5 % of the keys are uploaded and
   ~2 % are deleted, each through the event path as S3 would notify it.
3. Reconciliation: every key's item is its current version's result, or a deletion when it has none;
   nothing lost, nothing wrong; every object version was embedded once (backfill and event path together).
4. A second backfill embeds nothing.
5. A new head replaces the weights object and the rescore state machine runs: every classified upload's
   probabilities must equal the new head applied to its stored embedding (≤ 1e-6).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load_uploads import small_image
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import deserialize
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem
from clip_local.heads import reseeded_head
from clip_local.jobs import BACKFILL, RESCORE
from clip_local.paths import EXAMPLE_WEIGHTS, TINY_MODEL_DIR
from clip_local.stack import LocalStack, local_stack
from clip_local.step_functions import ChildRun, MapRun


@dataclass
class Report:
    objects: int = 0
    broken: int = 0
    new_versions: int = 0
    deletes: int = 0
    batches: int = 0
    backfill: Counter[str] = field(default_factory=Counter)
    backfill_seconds: float = 0.0
    second_run: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    wrong: int = 0
    embedded_twice: int = 0
    never_embedded: int = 0
    rescore: Counter[str] = field(default_factory=Counter)
    rescore_seconds: float = 0.0
    rescore_max_error: float = 0.0
    rescore_checked: int = 0

    @property
    def ok(self) -> bool:
        second_embeds = self.second_run.get("classified", 0) + self.second_run.get("failed", 0)
        return (
            self.lost == 0
            and self.wrong == 0
            and self.embedded_twice == 0
            and self.never_embedded == 0
            and second_embeds == 0
            and self.rescore_max_error <= 1e-6
            and self.rescore_checked > 0
        )

    def rows(self) -> list[tuple[str, Any]]:
        keys_per_s = self.objects / self.backfill_seconds if self.backfill_seconds else 0
        items_per_s = sum(self.rescore.values()) / self.rescore_seconds if self.rescore_seconds else 0
        return [
            ("objects before the run (broken)", f"{self.objects} ({self.broken})"),
            ("during the run: new versions / deletes", f"{self.new_versions} / {self.deletes}"),
            ("backfill batches", self.batches),
            *((f"backfill: {k}", v) for k, v in sorted(self.backfill.items())),
            ("backfill wall time (s) / keys per s", f"{self.backfill_seconds:.1f} / {keys_per_s:.1f}"),
            ("lost / wrong", f"{self.lost} / {self.wrong}"),
            ("object versions embedded twice / never", f"{self.embedded_twice} / {self.never_embedded}"),
            ("second run", ", ".join(f"{k} {v}" for k, v in sorted(self.second_run.items()))),
            *((f"rescore: {k}", v) for k, v in sorted(self.rescore.items())),
            ("rescore wall time (s) / items per s", f"{self.rescore_seconds:.1f} / {items_per_s:.1f}"),
            ("rescore: max |p - new head(stored embedding)|", f"{self.rescore_max_error:.2e}"),
        ]


def backfill_outcomes(summary_execution: Any) -> list[dict[str, Any]]:
    return [
        outcome
        for run in summary_execution.map_runs
        for child in run.children
        if child.status == "SUCCEEDED"
        for outcome in child.output["items"]
    ]


class Mutations:
    """Uploads of new versions and deletes, fired while the backfill runs (from its progress callback)."""

    def __init__(self, stack: LocalStack, keys: list[str], rng: random.Random, report: Report) -> None:
        self.stack = stack
        self.rng = rng
        self.report = report
        self.plan = [("put", k) for k in keys if rng.random() < 0.05] + [
            ("delete", k) for k in keys if rng.random() < 0.02
        ]
        rng.shuffle(self.plan)
        self.per_child = 1
        self.lock = threading.Lock()
        #: (key, version id) → the event path's outcome for that version.
        self.embedded_by_events: Counter[tuple[str, str]] = Counter()

    def __call__(self, run: MapRun, child: ChildRun) -> None:
        self.per_child = max(1, len(self.plan) // max(1, len(run.children) // 2))
        with self.lock:
            todo, self.plan = self.plan[: self.per_child], self.plan[self.per_child :]
        for action, key in todo:
            if action == "put":
                event = self.stack.uploads.put_event(key, small_image(self.rng.randrange(1 << 30)))
                version = event["Records"][0]["s3"]["object"]["versionId"]
                self.stack.invoker.invoke(event)
                with self.lock:
                    self.report.new_versions += 1
                    self.embedded_by_events[(key, version)] += 1
            else:
                self.stack.uploads.delete(key)
                with self.lock:
                    self.report.deletes += 1


def reconcile(stack: LocalStack, keys: list[str], report: Report) -> dict[str, ClassificationItem]:
    s3 = stack.client("s3")
    items: dict[str, ClassificationItem] = {}
    for page in stack.client("dynamodb").get_paginator("scan").paginate(TableName=stack.table):
        for raw in page["Items"]:
            item = deserialize(raw)
            items[item.picture_id] = item
    for key in keys:
        found = items.get(picture_id_for_key(key, stack.key_prefix))
        try:
            current: str | None = s3.head_object(Bucket=stack.upload_bucket, Key=key).get("VersionId")
        except s3.exceptions.ClientError:
            current = None  # a delete marker on top
        if found is None:
            report.lost += 1
        elif current is None:
            report.wrong += found.status != "deleted"
        else:
            report.wrong += found.status == "deleted" or found.source.version_id != current
    return items


def run(n: int, workers: int, seed: int = 0, model_dir: Path | None = None) -> Report:
    rng = random.Random(seed)
    report = Report(objects=n)
    with local_stack(quiet=True, workers=workers, model_dir=model_dir or TINY_MODEL_DIR / "int8") as stack:
        s3 = stack.client("s3")
        keys = []
        for i in range(n):
            key = f"{stack.key_prefix}existing/{i:05d}.{'jpg' if i % 2 else 'png'}"
            broken = rng.random() < 0.01
            report.broken += broken
            s3.put_object(
                Bucket=stack.upload_bucket,
                Key=key,
                Body=b"not an image" if broken else small_image(seed * 1_000_003 + i),
            )
            keys.append(key)
        time.sleep(1.1)  # S3's LastModified has seconds: the run must start in a later second

        mutations = Mutations(stack, keys, rng, report)
        start = time.perf_counter()
        summary = stack.jobs.run(BACKFILL, on_child_done=mutations)
        report.backfill_seconds = time.perf_counter() - start
        report.batches = summary.children
        report.backfill.update(summary.counts)
        if summary.status != "SUCCEEDED":
            raise RuntimeError(
                f"backfill {summary.status}: {summary.execution.error} {summary.execution.cause}"
            )

        embedded = Counter(mutations.embedded_by_events)
        for outcome in backfill_outcomes(summary.execution):
            if outcome["outcome"] in ("classified", "failed"):
                embedded[(outcome["key"], outcome["versionId"])] += 1
        report.embedded_twice = sum(1 for count in embedded.values() if count > 1)
        items = reconcile(stack, keys, report)
        for key in keys:
            item = items.get(picture_id_for_key(key, stack.key_prefix))
            if (
                item is not None
                and item.status != "deleted"
                and (key, item.source.version_id) not in embedded
            ):
                report.never_embedded += 1

        again = stack.jobs.run(BACKFILL)
        report.second_run.update(again.counts)

        new_head = Path(stack.jobs.scratch) / "new_head.json"
        new_head.write_bytes(reseeded_head(EXAMPLE_WEIGHTS, seed=seed + 1))
        stack.replace_weights(new_head)
        start = time.perf_counter()
        rescored = stack.jobs.run(RESCORE)
        report.rescore_seconds = time.perf_counter() - start
        report.rescore.update(rescored.counts)
        head = Head(parse_weights(new_head.read_bytes()))
        for item in reconcile(stack, keys, Report()).values():
            if item.status == "classified" and item.embedding is not None:
                expected = head.predict(embedding_codec.head_input(item.embedding, head.input_dim))[0]
                got = (
                    np.asarray([item.probabilities[c] for c in head.classes]) if item.probabilities else None
                )
                error = (
                    float(np.abs(got - np.asarray(expected.probabilities)).max()) if got is not None else 1.0
                )
                report.rescore_max_error = max(report.rescore_max_error, error)
                report.rescore_checked += 1
                report.wrong += item.head_version != head.version
    return report


def render(report: Report) -> str:
    lines = [f"{'measure':<46} {'value':>28}", "-" * 75]
    lines += [f"{name:<46} {value!s:>28}" for name, value in report.rows()]
    lines.append(f"{'reconciliation':<46} {'OK' if report.ok else 'FAILED':>28}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="objects in the bucket before the run (10,000)")
    parser.add_argument(
        "-w", "--workers", type=int, default=4, help="execution environments per function (4)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the tiny test model")
    args = parser.parse_args(argv)
    report = run(args.n, args.workers, args.seed, args.model_dir)
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

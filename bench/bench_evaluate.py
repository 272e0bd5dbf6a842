"""A shadow evaluation at scale on the local stack, beside the rescore of the same items (the reference,
measured in the same run).

    python -m bench.bench_evaluate                 # 10,000 stored results, 4 workers
    python -m bench.bench_evaluate -n 1000 -w 2    # smaller

``n`` classified results with stored embeddings are written as the upload path writes them (random unit
vectors from the deployed embedder, scored by the active head: a random prototype head, activated first);
a candidate that agrees with it on most items is registered (``clip_local.heads.prototype_head``); then the
committed evaluation state machine runs (``EvaluationSegments`` segments, both heads on every stored
embedding, nothing written), then the rescore of the same items with the candidate activated (every item
written). The table gives items/s of each; the report's agreement is checked against NumPy on the same
embeddings. The cost per million items is ``python -m bench.cost_model``'s "evaluation" path.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clip_classifier.cli.heads import render_report
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import serialize
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo
from clip_local.heads import prototype_head
from clip_local.jobs import EVALUATE, RESCORE
from clip_local.paths import TINY_MODEL_DIR
from clip_local.stack import LocalStack, local_stack


@dataclass
class Figures:
    items: int
    evaluate_seconds: float
    rescore_seconds: float
    agreement: float
    direct_agreement: float
    report: dict[str, object]

    @property
    def ok(self) -> bool:
        return self.agreement == self.direct_agreement and self.report["compared"] == self.items


def store_results(stack: LocalStack, n: int, seed: int) -> np.ndarray:
    """``n`` classified results under the active head, written 25 per BatchWriteItem; their features."""
    served = stack.upload.function().classifier.embedder.version
    head = Head(parse_weights(stack.registry.files.get_head(stack.registry.active().version)))  # type: ignore[union-attr]
    rng = np.random.default_rng(seed)
    dynamodb = stack.client("dynamodb")
    features = []
    batch: list[dict[str, object]] = []
    for i in range(n):
        stored, x = embedding_codec.round_trip(rng.normal(size=head.input_dim).astype(np.float32))
        features.append(x)
        item = ClassificationItem.classified(
            f"bench-{i:06d}",
            ResultFields.from_prediction(head.predict(x)[0], head_version=head.version),
            source=SourceInfo(
                type="s3", bucket=stack.upload_bucket, key=f"{stack.key_prefix}bench-{i:06d}.jpg"
            ),
            embedder_version=served,
            embedding=stored,
            sequencer=f"{i:020d}",
        )
        batch.append({"PutRequest": {"Item": serialize(item)}})
        if len(batch) == 25 or i == n - 1:
            dynamodb.batch_write_item(RequestItems={stack.table: batch})
            batch = []
    return np.concatenate(features)


def run(n: int, workers: int, seed: int = 0) -> Figures:
    with local_stack(quiet=True, workers=workers, model_dir=TINY_MODEL_DIR / "int8") as stack:
        first = prototype_head(seed + 1)
        first_file = Path(stack.jobs.scratch) / "first.json"
        first_file.write_bytes(first)
        stack.activate_head(first_file)
        features = store_results(stack, n, seed)
        active = Head(parse_weights(first))
        candidate_raw = prototype_head(seed + 2, nudge_of=first)
        candidate = stack.registry.register(candidate_raw, by="bench", location="candidate")[0].version
        start = time.perf_counter()
        summary = stack.jobs.run(
            EVALUATE, {"candidate": candidate, "active": active.version}, name="bench-eval"
        )
        evaluate_seconds = time.perf_counter() - start
        if summary.status != "SUCCEEDED":
            raise SystemExit(
                f"evaluation {summary.status}: {summary.execution.error} {summary.execution.cause}"
            )
        record = stack.registry.resolve(candidate)
        ref = record.evaluations["bench-eval"]
        assert ref.report_key is not None
        from clip_classifier.storage.evaluation_reports import S3EvaluationReports

        report = S3EvaluationReports(stack.client("s3"), stack.reports_bucket).report(ref.report_key)
        head = Head(parse_weights(candidate_raw))
        direct = float(
            (active.forward(features)[1].argmax(axis=1) == head.forward(features)[1].argmax(axis=1)).mean()
        )
        candidate_file = Path(stack.jobs.scratch) / "candidate.json"
        candidate_file.write_bytes(candidate_raw)
        stack.activate_head(candidate_file)
        start = time.perf_counter()
        rescore = stack.jobs.run(RESCORE)
        rescore_seconds = time.perf_counter() - start
        if rescore.status != "SUCCEEDED":
            raise SystemExit(f"rescore {rescore.status}")
    return Figures(n, evaluate_seconds, rescore_seconds, float(report["agreement"]), direct, report)


def render(f: Figures) -> str:
    lines = [
        f"{'job':<34} {'items':>7} {'seconds':>8} {'items/s':>8}",
        "-" * 60,
        f"{'evaluation (both heads, no write)':<34} {f.items:>7} {f.evaluate_seconds:>8.1f} {f.items / f.evaluate_seconds:>8.0f}",
        f"{'rescore (reference: one head, writes)':<34} {f.items:>7} {f.rescore_seconds:>8.1f} {f.items / f.rescore_seconds:>8.0f}",
        "",
        f"agreement {f.agreement:.4f} (report) vs {f.direct_agreement:.4f} (NumPy on the same embeddings): "
        + ("equal" if f.ok else "DIFFERENT"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000, help="stored results (default 10,000)")
    parser.add_argument("-w", "--workers", type=int, default=4, help="execution environments (default 4)")
    parser.add_argument("--report", action="store_true", help="also print the evaluation report")
    args = parser.parse_args(argv)
    figures = run(args.n, args.workers)
    print(render(figures))
    if args.report:
        print("\n" + render_report(figures.report))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The backfill and rescore state machines on the local stack (moto server, worker processes, the committed
definitions): races with uploads and deletes, redrive after failures, the rescore → backfill loop, the
opt-in trigger, and manifests that name keys the backfill must not classify."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.batch_jobs import render, run
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.heads import reseeded_head
from clip_local.jobs import BACKFILL, RESCORE
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT, TINY_MODEL_DIR
from clip_local.stack import LocalStack, local_stack
from clip_local.step_functions import FunctionError
from clip_local.template import function_arn

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
IMAGES = [FIXTURES / name for name in ("small_rgb.png", "landscape_rgb.jpg", "photo.webp", "gray_l.png")]


def test_backfill_races_uploads_and_deletes_and_reconciles_then_rescore_is_exact() -> None:
    report = run(n=150, workers=2, seed=4)
    print(render(report))
    assert report.ok, render(report)
    assert report.new_versions > 0 and report.deletes > 0  # the races happened
    assert report.backfill["classified"] > 100 and report.second_run.get("classified", 0) == 0
    assert report.rescore["rescored"] > 100


def put_images(stack: LocalStack, count: int) -> list[str]:
    keys = []
    for i in range(count):
        path = IMAGES[i % len(IMAGES)]
        stack.put_existing(f"old/{i:03d}{path.suffix}", path.read_bytes())
        keys.append(f"{stack.key_prefix}old/{i:03d}{path.suffix}")
    time.sleep(1.1)  # S3's LastModified has seconds: the run must start in a later second
    return keys


def test_failed_batches_are_tolerated_up_to_the_limit_and_a_redrive_finishes_the_run() -> None:
    with local_stack(quiet=True, workers=2, model_dir=TINY_MODEL_DIR / "int8") as stack:
        keys = put_images(stack, 60)  # 3 batches of the template's 25
        arn = function_arn("BackfillBatchFunction")
        real = stack.jobs.functions[arn]
        poisoned = {keys[30]}

        def flaky(payload: Any) -> Any:
            if poisoned & {item["Key"] for item in payload["Items"]}:
                raise FunctionError("TransientBatchError", "results_store_unavailable: throttled")
            return real(payload)

        stack.jobs.functions[arn] = flaky
        stack.jobs.retry_scale = 0.05  # the definition's backoff (2 s, doubling, 4 attempts), shortened
        summary = stack.jobs.run(BACKFILL)
        # One batch of three failed after its retries: over the template's 1 % tolerance.
        assert summary.status == "FAILED" and summary.failed_children == 1
        assert summary.execution.error == "States.ExceedToleratedFailureThreshold"
        retries = [e for e in summary.execution.history if e.get("retry") == "TransientBatchError"]
        assert len(retries) == 4  # the definition's MaxAttempts
        assert summary.counts == {"classified": 35}
        stored = [stack.result(picture_id_for_key(k, stack.key_prefix)) for k in keys]
        assert sum(item is not None for item in stored) == 35

        poisoned.clear()  # the cause is fixed
        redriven = stack.jobs.redrive(summary)
        assert redriven.status == "SUCCEEDED" and redriven.failed_children == 0
        assert all(stack.result(picture_id_for_key(k, stack.key_prefix)) is not None for k in keys)
        # The run's results were written by its ResultWriter.
        written = summary.execution.output
        listing = stack.client("s3").list_objects_v2(Bucket=stack.reports_bucket, Prefix="backfill/")
        assert any(o["Key"].endswith("/manifest.json") for o in listing.get("Contents", [])), written


def test_rescore_lists_what_it_cannot_score_and_the_backfill_reads_that_list(tmp_path: Path) -> None:
    with local_stack(quiet=True, workers=2, model_dir=TINY_MODEL_DIR / "int8") as stack:
        stack.upload.function().classifier.store_embeddings = (
            False  # results from before embeddings were kept
        )
        for i, path in enumerate(IMAGES * 3):
            assert stack.upload_file(f"new/{i:02d}{path.suffix}", path.read_bytes())
        new_head = tmp_path / "head.json"
        new_head.write_bytes(reseeded_head(EXAMPLE_WEIGHTS, seed=2))
        stack.replace_weights(new_head)

        first = stack.jobs.run(RESCORE, name="first-rescore")
        assert first.status == "SUCCEEDED" and first.counts == {"no_embedding": 12}
        listed = first.execution.output
        assert listed["keys"] == 12 and listed["manifest"].endswith(
            "first-rescore/needs-backfill/manifest.json"
        )
        bucket, key = listed["manifest"].removeprefix("s3://").split("/", 1)

        backfilled = stack.jobs.run(BACKFILL, {"manifest": {"bucket": bucket, "key": key}})
        # Event-path results of the same object version, refreshed in place with their embeddings kept.
        assert backfilled.status == "SUCCEEDED" and backfilled.counts == {"classified": 12}
        item = stack.result(picture_id_for_key(f"{stack.key_prefix}new/00.png", stack.key_prefix))
        assert item is not None and item.embedding is not None and item.sequencer is not None

        second = stack.jobs.run(RESCORE, name="second-rescore")
        assert second.counts == {"current": 12} and second.execution.output["manifest"] is None


def test_the_trigger_starts_a_run_only_for_the_weights_object_itself() -> None:
    with local_stack(quiet=True, workers=1, model_dir=TINY_MODEL_DIR / "int8") as stack:
        other = stack.jobs.run(RESCORE, {"trigger": "s3://clip-local-models/heads/notes.txt"})
        assert other.status == "SUCCEEDED" and other.children == 0
        assert [e["state"] for e in other.execution.history] == ["TriggeredByTheHead", "NotTheHeadWeights"]
        mine = stack.jobs.run(RESCORE, {"trigger": stack.weights_uri})
        assert mine.status == "SUCCEEDED" and mine.children == 16  # the template's RescoreSegments
        waits = [e["wait_seconds"] for e in mine.execution.history if "wait_seconds" in e]
        assert waits == [300 + 60]  # WeightsRefreshSeconds + the upload timeout, from the template


def test_a_manifest_naming_missing_and_foreign_keys(tmp_path: Path) -> None:
    with local_stack(quiet=True, workers=1, model_dir=TINY_MODEL_DIR / "int8") as stack:
        keys = put_images(stack, 2)
        rows = [
            (stack.upload_bucket, keys[0]),
            (stack.upload_bucket, "uploads/gone.jpg"),
            (stack.upload_bucket, "private/x.jpg"),
            ("someone-elses-bucket", keys[1]),
        ]
        data = "".join(f'"{b}","{k}"\n' for b, k in rows)
        s3 = stack.client("s3")
        s3.put_object(
            Bucket=stack.reports_bucket, Key="rescore/hand/needs-backfill/data/1.csv", Body=data.encode()
        )
        manifest = {
            "sourceBucket": stack.upload_bucket,
            "destinationBucket": f"arn:aws:s3:::{stack.reports_bucket}",
            "fileFormat": "CSV",
            "fileSchema": "Bucket, Key",
            "files": [
                {"key": "rescore/hand/needs-backfill/data/1.csv", "size": len(data), "MD5checksum": ""}
            ],
        }
        s3.put_object(
            Bucket=stack.reports_bucket, Key="rescore/hand/manifest.json", Body=json.dumps(manifest).encode()
        )
        summary = stack.jobs.run(
            BACKFILL, {"manifest": {"bucket": stack.reports_bucket, "key": "rescore/hand/manifest.json"}}
        )
        assert summary.status == "SUCCEEDED"
        assert summary.counts == {"classified": 1, "missing": 1, "ignored": 2}


def test_the_evaluation_benchmark_runs_small_and_agrees_with_numpy() -> None:
    from bench.bench_evaluate import render
    from bench.bench_evaluate import run as run_evaluation

    figures = run_evaluation(300, workers=2, seed=3)
    assert figures.ok, render(figures)
    assert 0 < figures.agreement < 1 and figures.report["notCompared"] == {}
    table = render(figures)
    assert "evaluation (both heads, no write)" in table and "rescore (reference" in table

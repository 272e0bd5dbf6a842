"""``python -m clip_local``: the whole product on this machine, no AWS account.

Starts moto on 127.0.0.1 with the template's table, bucket and queue; uploads every image of ``--images``
(default: the test fixtures) to the local bucket, where each upload is classified by the real upload
function; prints the results as a table; then serves the scoring API until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from pathlib import Path

from clip_classifier.manifest import load_manifest
from clip_classifier.picture_id import picture_id_for_key
from clip_classifier.records import ClassificationItem

from .paths import EXAMPLE_WEIGHTS, REPO_ROOT, default_model_dir
from .stack import LocalStack, local_stack

DEFAULT_IMAGES = REPO_ROOT / "tests" / "fixtures" / "images"


def progress(done: int, total: int, label: str, width: int = 30) -> None:
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label[:40]:<40}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def classify_folder(stack: LocalStack, folder: Path) -> list[tuple[str, ClassificationItem | None]]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    results = []
    for i, path in enumerate(files, 1):
        progress(i - 1, len(files), path.name)
        stack.upload_file(path.name, path.read_bytes())
        picture_id = picture_id_for_key(stack.key_prefix + path.name, stack.key_prefix)
        results.append((path.name, stack.result(picture_id)))
    progress(len(files), len(files), "done")
    return results


def render(results: list[tuple[str, ClassificationItem | None]]) -> str:
    lines = [f"{'file':<28} {'status':<11} {'top label':<14} {'p(top)':>7}  detail", "-" * 96]
    for name, record in results:
        if record is None:
            lines.append(f"{name:<28} {'missing':<11}")
        elif record.status == "classified":
            lines.append(
                f"{name:<28} {record.status:<11} {record.top_label or '':<14} {record.top_probability or 0:>7.4f}  "
                f"head {str(record.head_version)[:8]}, model {str(record.embedder_version)[:8]}"
            )
        else:
            detail = f"{record.error.code}: {record.error.message}" if record.error else ""
            lines.append(f"{name:<28} {record.status:<11} {'':<14} {'':>7}  {detail[:60]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clip_local", description=__doc__)
    parser.add_argument(
        "--images", default=str(DEFAULT_IMAGES), help="folder of images to upload ('' to upload nothing)"
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="folder with model.onnx + manifest.json (default: the ViT-B/32 of 'make model' if exported, "
        "else the tiny test model)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=EXAMPLE_WEIGHTS,
        help="head weights JSON to serve (default: the random example head; e.g. one from weights/train_head.py)",
    )
    parser.add_argument("--port", type=int, default=3000, help="port of the local API (default 3000)")
    parser.add_argument("--moto-port", type=int, default=5000, help="port of the moto server (default 5000)")
    parser.add_argument("--api-key", default="local-dev-key", help="x-api-key the local API requires")
    parser.add_argument("--once", action="store_true", help="classify, print, and exit without serving")
    parser.add_argument(
        "--verbose", action="store_true", help="show the functions' JSON logs and EMF metrics"
    )
    args = parser.parse_args(argv)
    model_dir: Path = args.model_dir or default_model_dir()
    manifest = load_manifest(model_dir / "manifest.json")
    if not args.verbose:
        # Powertools warns when an invocation published no metric (GET routes); noise for this table.
        warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

    with local_stack(
        weights=args.weights,
        api_port=args.port,
        moto_port=args.moto_port,
        api_key=args.api_key,
        model_dir=model_dir,
        quiet=not args.verbose,
    ) as stack:
        url = stack.api.url
        print(
            f"moto (S3, DynamoDB, SQS) on {stack.aws.endpoint}; table {stack.table}; weights {stack.weights_uri}"
        )
        print(
            f"model {model_dir} ({manifest.model_id}, {manifest.quantization}); "
            f"uploads go to s3://{stack.upload_bucket}/{stack.key_prefix}"
        )
        if manifest.random_init:
            print(
                "note: a randomly initialised model (run 'make model' for ViT-B/32): its labels mean nothing"
            )
        if args.images:
            folder = Path(args.images).expanduser()
            print(f"classifying {folder} ...")
            print(render(classify_folder(stack, folder)))
            print(f"dead-lettered events: {stack.invoker.dead_lettered}")
        print(f"\nAPI on {url}/api   (x-api-key: {stack.api_key})")
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/model")
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/classifications/landscape_rgb.jpg")
        print(
            f"  curl -s -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' "
            f'-d "{{\\"pictureId\\": \\"demo-1\\", \\"features\\": '
            f'[$(python3 -c \'print(",".join(["0.01"]*512))\')]}}" {url}/api/v1/scores'
        )
        if args.once:
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("Ctrl-C to stop.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

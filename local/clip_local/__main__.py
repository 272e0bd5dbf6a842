"""``python -m clip_local``: the whole product on this machine, no AWS account.

Starts moto on 127.0.0.1 with the template's table, buckets and queue; uploads every image of ``--images``
(default: the test fixtures) to the local bucket, where each upload is classified by the real upload
function; prints the results as a table; then serves the scoring API until Ctrl-C.

``python -m clip_local backfill``: the images are put in the bucket *without* notifications (objects from
before the stack), then the backfill state machine classifies them (``--copies N`` multiplies them).
``python -m clip_local rescore``: the images are uploaded and classified, a new head replaces the weights
object (``--new-weights``, default a re-drawn example head), and the rescore state machine re-scores every
stored embedding. Both run the committed state machine definitions with the template's batch sizes and
concurrency, print a progress bar and a summary, then serve the API (``--once`` exits).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

from clip_classifier.cli.target import LOCAL_OUTPUTS
from clip_classifier.model.manifest import load_manifest
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem

from .cognito import LOCAL_REVIEWER, new_password
from .heads import reseeded_head
from .jobs import BACKFILL, RESCORE, JobSummary
from .paths import EXAMPLE_WEIGHTS, REPO_ROOT, WEB_DIR, default_model_dir
from .stack import LocalStack, local_stack
from .step_functions import ChildRun, MapRun

DEFAULT_IMAGES = REPO_ROOT / "tests" / "fixtures" / "images"
#: How often the local stack's functions check the active head (clip-classifier --local heads activate).
LOCAL_REFRESH_SECONDS = 1


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


def web_ready() -> bool:
    """onnxruntime-web is installed in web/ (make local runs npm ci there)."""
    return (WEB_DIR / "node_modules" / "onnxruntime-web" / "dist").is_dir()


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


class MapProgress:
    """A progress bar over a state machine's map children (keys for a backfill, segments for a rescore)."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.done = 0
        self.units = 0

    def __call__(self, run: MapRun, child: ChildRun) -> None:
        self.done += 1
        items = child.input.get("Items") if isinstance(child.input, dict) else None
        self.units += len(items) if isinstance(items, list) else 1
        progress(self.done, len(run.children), f"{self.units} {self.unit}")


def render_summary(name: str, summary: JobSummary, seconds: float, keys: int) -> str:
    counts = ", ".join(f"{status} {count}" for status, count in sorted(summary.counts.items())) or "nothing"
    rate = f"{keys / seconds:.1f}/s" if seconds > 0 else ""
    lines = [
        f"{name}: {summary.status} in {seconds:.1f} s ({rate}); {summary.children} children, "
        f"{summary.failed_children} failed",
        f"  {counts}",
    ]
    if summary.execution.error:
        lines.append(f"  error: {summary.execution.error}: {summary.execution.cause}")
    return "\n".join(lines)


def run_backfill(stack: LocalStack, folder: Path, copies: int) -> None:
    files = image_files(folder)
    for copy in range(copies):
        for path in files:
            stack.put_existing(f"existing-{copy}/{path.name}" if copies > 1 else path.name, path.read_bytes())
    total = len(files) * copies
    time.sleep(1.1)  # S3's LastModified has seconds: objects from the run's first second are left to events
    print(
        f"{total} objects put in s3://{stack.upload_bucket}/{stack.key_prefix} without notifications; backfill ..."
    )
    start = time.perf_counter()
    summary = stack.jobs.run(BACKFILL, on_child_done=MapProgress("keys"))
    print(render_summary("backfill", summary, time.perf_counter() - start, total))


def run_rescore(stack: LocalStack, folder: Path, new_weights: Path | None) -> None:
    files = image_files(folder)
    print(f"classifying {len(files)} uploads with the current head ...")
    for path in files:
        stack.upload_file(path.name, path.read_bytes())
    if new_weights is None:
        new_weights = Path(stack.jobs.scratch) / "reseeded_head.json"
        new_weights.write_bytes(reseeded_head(EXAMPLE_WEIGHTS, seed=1))
        print(
            "new head: the example head with its last layer re-drawn (seed 1; as meaningless as the example)"
        )
    stack.replace_weights(new_weights)
    start = time.perf_counter()
    summary = stack.jobs.run(RESCORE, on_child_done=MapProgress("segments"))
    print(render_summary("rescore", summary, time.perf_counter() - start, sum(summary.counts.values())))
    listed = summary.execution.output or {}
    if listed.get("manifest"):
        print(f"  listed for a backfill: {listed['keys']} key(s), manifest {listed['manifest']}")


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port`` (checked before any server starts: moto's
    server thread would only print the error and leave the process waiting).

    The probe binds as the servers do, with SO_REUSEADDR: connections a previous run closed leave the port
    in TIME_WAIT for a minute, which does not stop a server from listening and must not be called "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def startup_problem(args: argparse.Namespace, model_dir: Path) -> str | None:
    """What stops the local stack before it starts, as one line naming the option to change."""
    for port, option, what in (
        (args.moto_port, "--moto-port", "the moto server"),
        (args.port, "--port", "the API"),
    ):
        if port and port_in_use(port):
            return (
                f"port {port} ({what}, {option}) is already in use: stop what uses it, or choose another, "
                f'e.g. make local ARGS="{option} {port + 1}"'
            )
    if args.images:
        folder = Path(args.images).expanduser()
        if not folder.is_dir():
            return f"--images {folder}: {'not a folder' if folder.exists() else 'no such folder'}"
    if not (model_dir / "manifest.json").is_file() or not (model_dir / "model.onnx").is_file():
        return (
            f"--model-dir {model_dir}: no model.onnx and manifest.json there (export one with 'make model')"
        )
    for option, path in (("--weights", args.weights), ("--new-weights", args.new_weights)):
        if path is not None and not Path(path).is_file():
            return f"{option} {path}: no such file"
    return None


def write_outputs(path: Path, stack: LocalStack) -> str:
    """The stack's outputs for ``clip-classifier --local``, written when it starts serving; what was written
    (removed when the stack stops, unless another stack has written its own since)."""
    text = json.dumps(stack.outputs(), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def describe_served_head(stack: LocalStack) -> str:
    """Which head the functions serve, and where it came from (the registry's record)."""
    pointer = stack.registry.active()
    if pointer is None:
        return "head: none active"
    record = stack.registry.resolve(pointer.version)
    return (
        f"head {record.version[:12]} ({record.head_type}, {len(record.classes)} classes): {record.source}; "
        "change it with clip-classifier --local heads add/evaluate/activate"
    )


def main(argv: list[str] | None = None) -> int:
    written: list[tuple[Path, str]] = []
    try:
        return _main(argv, written)
    finally:
        for path, text in written:
            try:
                if path.read_text() == text:
                    path.unlink()
            except OSError:
                pass  # already gone


def _main(argv: list[str] | None, written: list[tuple[Path, str]]) -> int:
    parser = argparse.ArgumentParser(prog="python -m clip_local", description=__doc__)
    parser.add_argument(
        "job",
        nargs="?",
        choices=["run", "backfill", "rescore"],
        default="run",
        help="run (default): upload and classify; backfill: classify objects already in the bucket; "
        "rescore: re-score stored embeddings with a new head",
    )
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
        default=None,
        help="the first head to register and serve (default: the model's zero-shot head that 'make model' "
        "builds, else the random example head; e.g. one from weights/train_head.py)",
    )
    parser.add_argument(
        "--outputs",
        type=Path,
        default=LOCAL_OUTPUTS,
        help=f"where to write the stack's outputs for clip-classifier --local while it runs (default {LOCAL_OUTPUTS})",
    )
    parser.add_argument("--port", type=int, default=3000, help="port of the local API (default 3000)")
    parser.add_argument("--moto-port", type=int, default=5000, help="port of the moto server (default 5000)")
    parser.add_argument("--api-key", default="local-dev-key", help="x-api-key the local API requires")
    parser.add_argument("--once", action="store_true", help="classify, print, and exit without serving")
    parser.add_argument(
        "--copies", type=int, default=1, help="backfill: put each image this many times (default 1)"
    )
    parser.add_argument(
        "--new-weights",
        type=Path,
        default=None,
        help="rescore: the head to re-score with (default: re-drawn example)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="backfill/rescore: execution environments per function (default 4)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the functions' JSON logs and EMF metrics"
    )
    args = parser.parse_args(argv)
    model_dir: Path = args.model_dir or default_model_dir()
    problem = startup_problem(args, model_dir)
    if problem:
        print(f"python -m clip_local: {problem}", file=sys.stderr)
        return 1
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
        workers=args.workers,
        # Deployed, a warm function checks the active head every 300 s; here an activation should show at once.
        extra_env={"WEIGHTS_REFRESH_SECONDS": str(LOCAL_REFRESH_SECONDS)},
    ) as stack:
        url = stack.api.url
        print(
            f"moto (S3, DynamoDB, SQS) on {stack.aws.endpoint}; table {stack.table}; weights {stack.weights_uri}"
        )
        print(describe_served_head(stack))
        print(
            f"model {model_dir} ({manifest.model_id}, {manifest.quantization}); "
            f"uploads go to s3://{stack.upload_bucket}/{stack.key_prefix}"
        )
        if manifest.random_init:  # the head may mean something; features of a random model cannot
            print(
                "note: a randomly initialised model (run 'make model' for ViT-B/32): its labels mean nothing"
            )
        folder = Path(args.images).expanduser() if args.images else None
        if args.job == "backfill" and folder is not None:
            run_backfill(stack, folder, args.copies)
        elif args.job == "rescore" and folder is not None:
            run_rescore(stack, folder, args.new_weights)
        elif folder is not None:
            print(f"classifying {folder} ...")
            print(render(classify_folder(stack, folder)))
            print(f"dead-lettered events: {stack.invoker.dead_lettered}")
        print(f"\nAPI on {url}/api   (x-api-key: {stack.api_key})")
        print(
            f"browser demo: {url}/#key={stack.api_key}"
            + ("" if web_ready() else "   (run 'make local' to install it)")
        )
        # The reviewers' side: a person in the user pool (moto's Cognito), and the page that signs them in.
        password = new_password()
        stack.add_reviewer(LOCAL_REVIEWER, password)
        print(f"review page: {stack.review_page_url()}")
        print(
            f"  sign in as {LOCAL_REVIEWER} / {password}   (a local user of moto's Cognito, made for this run)"
        )
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/model")
        print(f"  curl -s -H 'x-api-key: {stack.api_key}' {url}/api/v1/classifications/landscape_rgb.jpg")
        print(
            f"  curl -s -H 'x-api-key: {stack.api_key}' -H 'content-type: application/json' "
            f'-d "{{\\"pictureId\\": \\"demo-1\\", \\"features\\": '
            f'[$(python3 -c \'print(",".join(["0.01"]*512))\')]}}" {url}/api/v1/scores'
        )
        if args.once:
            return 0
        # Only a stack that stays up is one clip-classifier --local can talk to.
        written.append((args.outputs, write_outputs(args.outputs, stack)))
        print(f"clip-classifier --local reaches it (outputs in {args.outputs})")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("Ctrl-C to stop.", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

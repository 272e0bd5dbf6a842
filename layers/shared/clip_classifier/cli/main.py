"""``clip-classifier``: the operator's command line (installed by ``pip install``).

    clip-classifier --stack NAME heads list|add FILE|show VERSION|evaluate VERSION|activate VERSION|rollback
    clip-classifier --local heads ...               # the local stack started by 'make local'
    clip-classifier --stack NAME heads init --model-dir DIR [--head FILE]
    clip-classifier classify DIR --head FILE|VERSION [--model-dir DIR] [--csv OUT]
    clip-classifier --stack NAME review list [--limit N] [--cursor C] | label PICTURE_ID LABEL | unlabel PICTURE_ID
    clip-classifier --stack NAME labels export --out labels.npz

Every command prints a table, or with ``--json`` one JSON document; a refusal is one line on stderr and
exit status 1 (2 for a command line that does not parse).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clip_classifier.cli.classify import as_csv, as_table, classify_folder
from clip_classifier.cli.heads import (
    Operator,
    Output,
    activate_head,
    add_head,
    evaluate_head,
    init_registry,
    list_heads,
    rollback_head,
    show_head,
)
from clip_classifier.cli.review import Reviewer, export_labels, label_picture, review_list, unlabel_picture
from clip_classifier.cli.target import LOCAL_OUTPUTS, Target, local_target, stack_target
from clip_classifier.events.bridge import EventBridgePublisher
from clip_classifier.exceptions import ClassifierError, ConfigurationError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.registry.service import HeadRegistry
from clip_classifier.storage.evaluation_reports import S3EvaluationReports
from clip_classifier.storage.head_registry import DynamoHeadRecords, S3HeadFiles
from clip_classifier.storage.result_item import utc_now
from clip_classifier.storage.results_table import ResultsStore

PROG = "clip-classifier"
#: The model ``make model`` exports (what ``classify`` uses unless told otherwise).
DEFAULT_MODEL_DIR = Path("weights/models/vit-b-32/int8")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Operate a deployed (or the local) CLIP classifier.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--stack", metavar="NAME", help="a deployed stack (its CloudFormation outputs)")
    where.add_argument("--local", action="store_true", help="the local stack that 'make local' runs")
    p.add_argument(
        "--outputs",
        type=Path,
        default=LOCAL_OUTPUTS,
        help=f"with --local: the outputs file the local stack writes (default {LOCAL_OUTPUTS})",
    )
    p.add_argument("--region", help="the stack's AWS region (default: your AWS configuration's)")
    p.add_argument("--profile", help="an AWS profile of your configuration")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    commands = p.add_subparsers(dest="command", required=True)

    heads = commands.add_parser(
        "heads", help="the head registry: list, add, show, evaluate, activate, rollback"
    )
    actions = heads.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every registered head, the active one and the rollback target")
    add = actions.add_parser("add", help="register a head file (checked as the functions check it)")
    add.add_argument("file", type=Path)
    show = actions.add_parser("show", help="a head's record, its evaluations and the latest report")
    show.add_argument("version", help="a version (6+ hex digits of it), or a head file")
    evaluate = actions.add_parser(
        "evaluate", help="compare a candidate with the active head on every stored result"
    )
    evaluate.add_argument("version", help="a version (6+ hex digits of it), or a head file")
    evaluate.add_argument(
        "--no-wait", action="store_true", help="start it and return (heads show reads the report)"
    )
    evaluate.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the report")
    activate = actions.add_parser("activate", help="serve a registered head from both functions")
    activate.add_argument("version", help="a version (6+ hex digits of it), or a head file")
    activate.add_argument("--rescore", action="store_true", help="then re-score every stored result with it")
    activate.add_argument(
        "--no-wait-for-evaluation", action="store_true", help="activate even while its evaluation runs"
    )
    rollback = actions.add_parser("rollback", help="serve the head that was active before the active one")
    rollback.add_argument("--rescore", action="store_true", help="then re-score every stored result with it")
    init = actions.add_parser("init", help="record the deployed model and, with --head, a first active head")
    init.add_argument(
        "--model-dir", type=Path, required=True, help="the exported model the stack was built with"
    )
    init.add_argument("--head", type=Path, help="a head file to register and activate")

    review = commands.add_parser("review", help="the review queue: list it, label a result, withdraw a label")
    review_actions = review.add_subparsers(dest="action", required=True)
    listing = review_actions.add_parser("list", help="results waiting for a person, most uncertain first")
    listing.add_argument("--limit", type=int, default=20, choices=range(1, 101), metavar="N (1-100)")
    listing.add_argument("--cursor", help="the next page (printed under the previous one)")
    label = review_actions.add_parser("label", help="record a person's label beside the machine's result")
    label.add_argument("picture_id")
    label.add_argument("label", help='one of the active head\'s classes, or "none of these"')
    unlabel = review_actions.add_parser("unlabel", help="withdraw a person's label")
    unlabel.add_argument("picture_id")
    labels = commands.add_parser("labels", help="people's labels: export them for the trainer")
    label_actions = labels.add_subparsers(dest="action", required=True)
    export = label_actions.add_parser(
        "export", help="labelled items' stored embeddings → an .npz to train on"
    )
    export.add_argument("--out", type=Path, required=True, help="the .npz file (train_head.py --features)")

    classify = commands.add_parser("classify", help="classify a folder on this machine (no stack)")
    classify.add_argument("folder", type=Path)
    classify.add_argument(
        "--head", required=True, help="a head file, or a registered version (with --stack/--local)"
    )
    classify.add_argument(
        "--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help=f"default {DEFAULT_MODEL_DIR}"
    )
    classify.add_argument("--csv", type=Path, help="also write every class's probability to this CSV file")
    return p


def target_of(args: argparse.Namespace) -> Target:
    if args.local:
        return local_target(args.outputs)
    if args.stack:
        return stack_target(args.stack, region=args.region, profile=args.profile)
    raise ConfigurationError("say which stack: --stack NAME (a deployed one) or --local (make local's)")


def operator_for(target: Target) -> Operator:
    records = DynamoHeadRecords(target.output("HeadsTableName"), target.client("dynamodb"))
    files = S3HeadFiles(target.output("HeadsBucketName"), target.client("s3"))
    states = target.client("stepfunctions")
    operator = Operator(
        registry=HeadRegistry(records, files, clock=utc_now),
        reports=S3EvaluationReports(target.client("s3"), target.output("ReportsBucketName")),
        states=states,
        evaluate_machine=target.output("EvaluateStateMachineArn"),
        rescore_machine=target.output("RescoreStateMachineArn"),
        who=target.who(),
        refresh_seconds=float(target.outputs.get("WeightsRefreshSeconds", 300)),
        poll_seconds=0.5 if target.local else 5.0,
        events=events_of(target),
    )
    operator.registry.evaluation_running = operator.evaluation_running
    return operator


def events_of(target: Target) -> EventBridgePublisher | None:
    """The stack's event bus when it publishes events (its ``EventBusName`` output), else ``None``."""
    bus = target.outputs.get("EventBusName")
    return EventBridgePublisher(target.client("events"), bus) if bus else None


def reviewer_for(target: Target) -> Reviewer:
    records = DynamoHeadRecords(target.output("HeadsTableName"), target.client("dynamodb"))
    files = S3HeadFiles(target.output("HeadsBucketName"), target.client("s3"))
    return Reviewer(
        store=ResultsStore(target.output("ResultsTableName"), target.client("dynamodb")),
        registry=HeadRegistry(records, files, clock=utc_now),
        who=target.who(),
        clock=utc_now,
        events=events_of(target),
    )


def run_review(args: argparse.Namespace) -> Output:
    reviewer = reviewer_for(target_of(args))
    match (args.command, args.action):
        case ("review", "list"):
            return review_list(reviewer, limit=args.limit, cursor=args.cursor)
        case ("review", "label"):
            return label_picture(reviewer, args.picture_id, args.label)
        case ("review", "unlabel"):
            return unlabel_picture(reviewer, args.picture_id)
        case ("labels", "export"):
            return export_labels(reviewer, args.out)
    raise ConfigurationError(f"unknown command {args.command} {args.action}")


def version_of(given: str) -> str:
    """A version, a prefix of one, or the path of a head file (its content sha256: the file need not be the
    registered copy, only the same head)."""
    path = Path(given)
    if path.is_file():
        return parse_weights(path.read_bytes(), location=given).content_sha256
    return given


def run_heads(args: argparse.Namespace) -> Output:
    if getattr(args, "version", None):
        args.version = version_of(args.version)
    op = operator_for(target_of(args))
    match args.action:
        case "list":
            return list_heads(op)
        case "add":
            return add_head(op, args.file)
        case "show":
            return show_head(op, args.version)
        case "evaluate":
            return evaluate_head(op, args.version, wait=not args.no_wait, timeout=args.timeout)
        case "activate":
            return activate_head(
                op, args.version, rescore=args.rescore, wait_for_evaluation=not args.no_wait_for_evaluation
            )
        case "rollback":
            return rollback_head(op, rescore=args.rescore)
        case "init":
            return init_registry(op, args.model_dir, args.head)
    raise ConfigurationError(f"unknown heads command {args.action}")


def run_classify(args: argparse.Namespace) -> Output:
    path = Path(args.head)
    if path.is_file():
        raw, location = path.read_bytes(), str(path)
    elif args.stack or args.local:
        op = operator_for(target_of(args))
        record = op.registry.resolve(args.head)
        raw, location = op.registry.files.get_head(record.version), f"registered head {record.version[:12]}"
    else:
        raise ConfigurationError(
            f"--head {args.head}: no such file (a registered version needs --stack NAME or --local)"
        )
    head = Head(parse_weights(raw, location=location))
    if not (args.model_dir / "model.onnx").is_file():
        raise ConfigurationError(
            f"--model-dir {args.model_dir}: no model.onnx there (export one with 'make model')"
        )
    results = classify_folder(args.folder, head, args.model_dir)
    if args.csv:
        args.csv.write_text(as_csv(results, head.classes))
    data: dict[str, Any] = {
        "head": head.version,
        "results": [
            {
                "file": r.file,
                "status": r.status,
                "top": [{"label": lb, "probability": p} for lb, p in r.top],
                "error": r.error,
            }
            for r in results
        ],
    }
    text = as_table(results) + (f"\nwrote {args.csv}" if args.csv else "")
    return Output(text, data)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "heads":
            output = run_heads(args)
        elif args.command in ("review", "labels"):
            output = run_review(args)
        else:
            output = run_classify(args)
    except ClassifierError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(output.data, indent=2, default=str) if args.json else output.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

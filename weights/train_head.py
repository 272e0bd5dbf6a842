"""Train a head on your labelled images: a folder of class sub-folders (or a labels CSV, or feature files)
→ a head in the runtime's weights format, with a held-out evaluation report.

Needs the 'train' extra (scikit-learn, matplotlib, tqdm) and, for ``--head-type mlp|all``, the 'export'
extra (PyTorch)::

    python weights/train_head.py --images photos/ --model-dir weights/models/vit-b-32/int8 \\
        --head-type all --report report/ --out head.json

Images are embedded with the deployed preprocessing and embedder (``--model-dir``, default the tiny test
model) and cached by content + model sha256 (``--cache-dir``). The data is split per class (seeded) into
train / validation / test (70/15/15, at least one of each); hyperparameters are chosen on validation, the
report is on test. ``--head-type all`` trains the three and keeps the one with the best validation macro-F1
(within 0.005 the simpler: prototype, then logreg, then mlp). With ``--target-precision P`` the head also
carries an ambiguity guard fitted on validation: results below it are flagged ``ambiguous``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clip_classifier.exceptions import ClassifierError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import WeightsDocument, parse_weights
from clip_classifier.model.manifest import ModelManifest, load_manifest
from clip_export.evaluation import (
    Metrics,
    ambiguous,
    diagnostics,
    evaluate,
    fit_ambiguity,
    mcnemar,
    write_report,
)
from clip_export.head_files import head_document
from clip_export.head_training import (
    HEAD_TYPES,
    SIMPLEST_FIRST,
    TRAINERS,
    Split,
    TrainedHead,
    TrainOptions,
    fold_splits,
    stratified_split,
    train_logreg_anchored,
)
from clip_export.training_data import (
    DataError,
    Dataset,
    LabelledFile,
    check_classes,
    csv_items,
    embed_items,
    features_file,
    folder_items,
    merge,
    read_class_file,
)
from clip_export.zero_shot import wise_ft

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models" / "tiny" / "int8"
DEFAULT_CACHE = Path.home() / ".cache" / "clip-classifier" / "embeddings"
TIE = 0.005


def load_model(model_dir: Path) -> ModelManifest:
    """The embedder's manifest, or one line saying there is no usable model there."""
    try:
        return load_manifest(model_dir / "manifest.json")
    except ClassifierError as exc:
        raise DataError(
            f"--model-dir {model_dir}: {exc.message} (export one with 'make model', or pass another folder)"
        ) from exc


def load_data(args: argparse.Namespace) -> tuple[Dataset, str]:
    if not (args.images or args.labels or args.features):
        raise DataError("give --images DIR, --labels CSV and/or --features FILE")
    manifest = load_model(args.model_dir)
    items: list[LabelledFile] = []
    skipped: list[str] = []
    if args.images:
        items += folder_items(args.images, skipped)
    if args.labels:
        items += csv_items(args.labels)
    if args.classes:
        classes = read_class_file(args.classes)
    elif items:
        classes = sorted({label for item in items for label in item.target})
    else:
        classes = []
    if classes:
        check_classes(classes, "the class labels (folder names, --labels or --classes)")
    parts = []
    if items:
        parts.append(embed_items(items, classes, args.model_dir, args.cache_dir, quiet=args.quiet))
        classes = parts[0].classes
    if args.features:
        parts.append(features_file(args.features, classes or None, manifest.model_sha256))
        classes = parts[-1].classes
    if any(part.classes != classes for part in parts):
        raise DataError("the feature file's classes differ from the images' classes: pass --classes")
    if len(classes) < 2:
        raise DataError(f"a classifier needs at least 2 classes, found {len(classes)}: {', '.join(classes)}")
    data = merge(parts, manifest.output_dim)
    data.skipped[:0] = skipped
    if data.skipped:
        print(f"skipped {len(data.skipped)} unreadable file(s):", file=sys.stderr)
        for line in data.skipped:
            print(f"  {line}", file=sys.stderr)
    return data, manifest.model_sha256


def choose(trained: dict[str, TrainedHead], data: Dataset, validation: np.ndarray) -> tuple[str, str]:
    scores = {
        name: evaluate(
            head.probabilities(data.features[validation]), data.targets[validation], data.classes
        ).macro_f1
        for name, head in trained.items()
    }
    return choose_by(scores, "validation")


def choose_by(scores: dict[str, float], where: str) -> tuple[str, str]:
    best = max(scores.values())
    order = [h for h in SIMPLEST_FIRST if h in scores]
    chosen = next(name for name in order if scores[name] >= best - TIE)
    rule = (
        f"best {where} macro-F1 ("
        + ", ".join(f"{name} {scores[name]:.3f}" for name in order)
        + f"); within {TIE} the simpler head wins ({', '.join(order)})"
    )
    return chosen, rule


def load_zero_shot(args: argparse.Namespace, data: Dataset) -> WeightsDocument:
    try:
        raw = args.zero_shot_head.read_bytes()
    except OSError as exc:
        raise DataError(f"--zero-shot-head {args.zero_shot_head}: cannot be read ({exc.strerror})") from exc
    zero_shot = parse_weights(raw, location=str(args.zero_shot_head))
    if zero_shot.classes != data.classes or zero_shot.input_dim != data.features.shape[1]:
        raise DataError(
            f"--zero-shot-head {args.zero_shot_head} has classes {zero_shot.classes} on {zero_shot.input_dim}-d "
            f"features; the data has {data.classes} on {data.features.shape[1]}-d: build it from the same classes"
        )
    return zero_shot


def train_kind(
    args: argparse.Namespace, data: Dataset, kind: str, split: Split, options: TrainOptions
) -> TrainedHead:
    """One head; ``logreg`` with ``--init zero-shot`` is anchored at the zero-shot head's weights."""
    if kind == "logreg" and args.init == "zero-shot":
        zero_shot = load_zero_shot(args, data)
        if len(zero_shot.arrays()) != 1:
            raise DataError("--init zero-shot needs a one-layer head (from weights/zero_shot_head.py)")
        return train_logreg_anchored(data, split, options, zero_shot.arrays()[0])
    return TRAINERS[kind](data, split, options)


def zero_shot_heads(
    args: argparse.Namespace, data: Dataset, trained: dict[str, TrainedHead]
) -> dict[str, TrainedHead]:
    """With ``--zero-shot-head``: that head as a competitor and, with ``--wise-alpha``, its WiSE-FT
    interpolation with the trained logreg head (same classes, same order)."""
    if args.zero_shot_head is None:
        if args.wise_alpha is not None:
            raise DataError("--wise-alpha needs --zero-shot-head (a head from weights/zero_shot_head.py)")
        return {}
    zero_shot = load_zero_shot(args, data)
    heads = {
        "zero_shot": TrainedHead(
            "zero_shot",
            zero_shot.model_dump(mode="json"),
            Head(zero_shot),
            {"source": str(args.zero_shot_head)},
        )
    }
    if args.wise_alpha is not None:
        if "logreg" not in trained:
            raise DataError("--wise-alpha interpolates with the logreg head: use --head-type logreg or all")
        logreg = parse_weights(json.dumps(trained["logreg"].document))
        doc = wise_ft(zero_shot, logreg, args.wise_alpha)
        doc["head_type"] = "logreg"
        heads["wise"] = TrainedHead(
            "wise", doc, Head(parse_weights(json.dumps(doc))), {"alpha": args.wise_alpha}
        )
    return heads


@dataclass
class Evaluation:
    results: dict[str, tuple[Metrics, np.ndarray]]  # per head: test metrics and test probabilities
    chosen: str
    rule: str
    winner: TrainedHead  # the head to deploy
    split: Split  # the split the deployed head was trained with
    split_description: dict[str, Any]
    test_rows: np.ndarray  # rows of ``results``' probabilities, in order
    guard_probabilities: np.ndarray  # held-out predictions the ambiguity guard is fitted on
    guard_targets: np.ndarray


def held_out(args: argparse.Namespace, data: Dataset, kinds: list[str], options: TrainOptions) -> Evaluation:
    """One seeded split: hyperparameters and the choice on validation, figures on test."""
    split = stratified_split(data.hard, data.classes, args.seed)
    print(f"{len(data.classes)} classes, {len(data.features)} examples; split {split.sizes()}")
    trained = {kind: train_kind(args, data, kind, split, options) for kind in kinds}
    trained.update(zero_shot_heads(args, data, trained))
    chosen, rule = (
        choose(trained, data, split.validation) if len(trained) > 1 else (kinds[0], "the only head trained")
    )
    test_x, test_y = data.features[split.test], data.targets[split.test]
    results = {
        name: (evaluate(h.probabilities(test_x), test_y, data.classes), h.probabilities(test_x))
        for name, h in trained.items()
    }
    winner = trained[chosen]
    return Evaluation(
        results, chosen, rule, winner, split, split.sizes(), split.test,
        winner.probabilities(data.features[split.validation]), data.targets[split.validation],
    )  # fmt: skip


def cross_validate(
    args: argparse.Namespace, data: Dataset, kinds: list[str], options: TrainOptions
) -> Evaluation:
    """K folds for small sets: every example is predicted once by heads that never saw it (out-of-fold);
    figures, the choice and the ambiguity guard come from those predictions. The deployed head is then
    trained on all folds but one, which it uses for its own hyperparameters and early stopping."""
    folds = fold_splits(data.hard, data.classes, args.folds, args.seed)
    print(
        f"{len(data.classes)} classes, {len(data.features)} examples; {args.folds} folds of {[len(f.test) for f in folds]}"
    )
    out_of_fold: dict[str, np.ndarray] = {}
    for fold in folds:
        heads = {kind: train_kind(args, data, kind, fold, options) for kind in kinds}
        heads.update(zero_shot_heads(args, data, heads))
        for name, head in heads.items():
            out_of_fold.setdefault(name, np.zeros_like(data.targets))[fold.test] = head.probabilities(
                data.features[fold.test]
            )
    results = {name: (evaluate(p, data.targets, data.classes), p) for name, p in out_of_fold.items()}
    if len(results) > 1:
        chosen, rule = choose_by({name: m.macro_f1 for name, (m, _) in results.items()}, "out-of-fold")
    else:
        chosen, rule = next(iter(results)), "the only head trained"
    final = Split(
        train=np.concatenate([folds[0].train, folds[0].test]),
        validation=folds[0].validation,
        test=folds[0].test,
    )
    kind = "logreg" if chosen == "wise" else chosen
    trained = {kind: train_kind(args, data, kind, final, options)} if kind in TRAINERS else {}
    trained.update(zero_shot_heads(args, data, trained))
    description = {
        "folds": args.folds,
        "fold_sizes": [len(f.test) for f in folds],
        "final_validation": len(final.validation),
    }
    rows = np.arange(len(data.targets))
    return Evaluation(
        results, chosen, rule, trained[chosen], final, description, rows, results[chosen][1], data.targets
    )


def write_predictions(path: Path, data: Dataset, rows: np.ndarray, probabilities: np.ndarray) -> None:
    """The chosen head's test-split predictions: source, true label, predicted label, probabilities (JSON)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "label", "predicted", "probabilities"])
        for row, p in zip(rows, probabilities, strict=True):
            writer.writerow(
                [
                    data.sources[row],
                    data.classes[int(data.targets[row].argmax())],
                    data.classes[int(p.argmax())],
                    json.dumps(dict(zip(data.classes, p.tolist(), strict=True))),
                ]
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, help="one sub-folder per class")
    parser.add_argument("--labels", type=Path, help="CSV: path,label or path,label:w;label:w (soft)")
    parser.add_argument("--features", type=Path, help=".npz: features [N,D], labels [N], model_sha256")
    parser.add_argument("--classes", type=Path, help="class order, one label per line")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--head-type", choices=[*HEAD_TYPES, "all"], default="all")
    parser.add_argument(
        "--output", choices=["sigmoid_normalized", "softmax"], default="sigmoid_normalized", help="MLP output"
    )
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="0.05-0.15 typical")
    parser.add_argument("--class-weights", action="store_true", help="weight classes by inverse frequency")
    parser.add_argument("--margin", type=float, default=0.0, help="MLP: weight of a top-1/top-2 margin loss")
    parser.add_argument("--target-precision", type=float, help="fit an ambiguity guard for this precision")
    parser.add_argument("--zero-shot-head", type=Path, help="a zero-shot head (same classes) to compare with")
    parser.add_argument(
        "--wise-alpha", type=float, help="with --zero-shot-head: WiSE-FT interpolation weight of logreg"
    )
    parser.add_argument(
        "--init",
        choices=["zero-shot"],
        help="with --zero-shot-head: start logreg at the zero-shot weights and regularise towards them",
    )
    parser.add_argument("--folds", type=int, help="K-fold cross-validation instead of one split (small sets)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="folder for report.md and its pictures")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not 0.0 <= args.label_smoothing < 1.0:
        parser.error("--label-smoothing must be in [0, 1)")
    if args.wise_alpha is not None and not 0.0 <= args.wise_alpha <= 1.0:
        parser.error("--wise-alpha must be in [0, 1]")
    if args.init and not args.zero_shot_head:
        parser.error("--init zero-shot needs --zero-shot-head (a head from weights/zero_shot_head.py)")
    if args.target_precision is not None and not 0.0 < args.target_precision <= 1.0:
        parser.error("--target-precision must be in (0, 1]: the share of kept results that must be right")
    if not 0.0 <= args.margin < 1e6:
        parser.error("--margin must be a weight >= 0")
    if args.folds is not None and not 2 <= args.folds <= 100:
        parser.error("--folds must be between 2 and 100")
    try:
        return train(args)
    except ClassifierError as exc:  # a weights, model or image error: the runtime's own message, one line
        raise SystemExit(f"train_head.py: {exc.message}") from exc


def train(args: argparse.Namespace) -> int:
    data, model_sha = load_data(args)
    options = TrainOptions(
        seed=args.seed,
        label_smoothing=args.label_smoothing,
        class_weights=args.class_weights,
        mlp_output=args.output,
        margin=args.margin,
        # Each C of the sweep and every 10 MLP epochs, with the time left: never minutes of silence.
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    kinds = list(HEAD_TYPES) if args.head_type == "all" else [args.head_type]
    if args.folds:
        evaluation = cross_validate(args, data, kinds, options)
    else:
        evaluation = held_out(args, data, kinds, options)
    results, chosen, rule, winner = evaluation.results, evaluation.chosen, evaluation.rule, evaluation.winner

    guard: dict[str, Any] | None = None
    if args.target_precision is not None:
        guard = fit_ambiguity(evaluation.guard_probabilities, evaluation.guard_targets, args.target_precision)
        kept = ~ambiguous(results[chosen][1], guard)
        guard["test_coverage"] = round(float(kept.mean()), 4)
        guard["test_precision"] = (
            round(float(results[chosen][0].correct[kept].mean()), 4) if kept.any() else None
        )
    warnings = diagnostics(results[chosen][1], data.classes)

    counts = {label: int(c) for label, c in zip(data.classes, data.targets.sum(axis=0).round(3), strict=True)}
    training = {
        "head_type": chosen,
        "dataset_fingerprint": data.fingerprint(),
        "class_counts": counts,
        "split": evaluation.split_description,
        "seed": args.seed,
        "label_smoothing": args.label_smoothing,
        "class_weights": args.class_weights,
        "hyperparameters": winner.hyperparameters,
        "test_metrics": results[chosen][0].summary(),
        "selection": rule,
        "embedder_model_sha256": model_sha,
    }
    doc = winner.document
    linears = [
        (np.asarray(layer["weight"]), np.asarray(layer["bias"]))
        for layer in doc["layers"]
        if layer["type"] == "linear"
    ]
    extra = None
    if guard is not None:
        extra = {
            "ambiguity": {
                "min_top_probability": guard["min_top_probability"],
                "min_margin": guard["min_margin"],
                "fitted": guard,
            }
        }
    final = head_document(
        data.classes,
        linears,
        output=doc["output"],
        head_type={"wise": "logreg"}.get(chosen, chosen),
        training=training,
        exported_by="weights/train_head.py",
        extra=extra,
        embedder_sha256=[model_sha],
    )
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(final, separators=(",", ":")) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"--out {args.out}: cannot be written ({exc.strerror})") from exc

    print(f"{'head':<10} {'top-1':>6} {'top-3':>6} {'macroF1':>8} {'logloss':>8} {'ECE':>6}")
    for name, (metrics, _) in results.items():
        s = metrics.summary()
        mark = "  <- chosen" if name == chosen else ""
        print(
            f"{name:<10} {s['top1_accuracy']:>6.3f} {s['top3_accuracy']:>6.3f} {s['macro_f1']:>8.3f} "
            f"{s['log_loss']:>8.3f} {s['ece']:>6.3f}{mark}"
        )
    for name in results:
        if name != chosen:
            a, b, p = mcnemar(results[chosen][0].correct, results[name][0].correct)
            print(f"McNemar {chosen} vs {name}: {a} vs {b} discordant, p = {p:.4f}")
    if guard is not None:
        print(
            f"ambiguity guard: top >= {guard['min_top_probability']}, margin >= {guard['min_margin']}; "
            f"test coverage {guard['test_coverage']}, precision {guard['test_precision']}"
        )
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.report:
        context = {
            "classes": len(data.classes),
            "examples": len(data.features),
            "split": evaluation.split_description,
            "embedder": str(args.model_dir),
            "skipped files": len(data.skipped),
        }
        report = write_report(args.report, results, chosen, rule, context, guard, warnings)
        write_predictions(
            args.report / "test_predictions.csv", data, evaluation.test_rows, results[chosen][1]
        )
        print(f"report: {report}")
    print(
        f"wrote {args.out}: {chosen} head, {len(data.classes)} classes, version {final['content_sha256'][:12]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

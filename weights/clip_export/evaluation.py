"""Held-out evaluation of trained heads, the A/B comparison, the ambiguity guard, and the report.

Metrics on the test split: per-class precision/recall/F1/support, macro and micro averages, top-1 and top-3
accuracy, log loss, expected calibration error (15 equal-width confidence bins), the confusion matrix and
the most-confused class pairs. Heads are compared with McNemar's exact test on their paired top-1
correctness. The ambiguity guard — ``min_top_probability`` and ``min_margin`` (top-1 minus top-2) — is
fitted on the validation split: the pair that keeps the most predictions while their precision is at least
the target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ECE_BINS = 15
GRID = np.round(np.arange(0.0, 1.0001, 0.02), 2)


@dataclass
class Metrics:
    classes: list[str]
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    confusion: np.ndarray  # [true, predicted]
    top1: float
    top3: float
    log_loss: float
    ece: float
    macro_f1: float
    micro_f1: float
    correct: np.ndarray  # per test row: top-1 right?

    def summary(self) -> dict[str, float]:
        return {
            "top1_accuracy": round(self.top1, 4),
            "top3_accuracy": round(self.top3, 4),
            "macro_f1": round(self.macro_f1, 4),
            "micro_f1": round(self.micro_f1, 4),
            "log_loss": round(self.log_loss, 4),
            "ece": round(self.ece, 4),
        }

    def confused_pairs(self, count: int = 5) -> list[tuple[str, str, int]]:
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.dstack(np.unravel_index(np.argsort(-off, axis=None), off.shape))[0]
        return [(self.classes[t], self.classes[p], int(off[t, p])) for t, p in order[:count] if off[t, p] > 0]


def evaluate(probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> Metrics:
    truth, predicted = targets.argmax(axis=1), probabilities.argmax(axis=1)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    precision = np.divide(tp, confusion.sum(axis=0), out=np.zeros(k), where=confusion.sum(axis=0) > 0)
    recall = np.divide(tp, confusion.sum(axis=1), out=np.zeros(k), where=confusion.sum(axis=1) > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0
    )
    top3 = np.argsort(-probabilities, axis=1)[:, :3]
    correct = predicted == truth
    confidence = probabilities.max(axis=1)
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(
        abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
        for b in range(ECE_BINS)
        if (bins == b).any()
    )
    return Metrics(
        classes=list(classes),
        precision=precision,
        recall=recall,
        f1=f1,
        support=confusion.sum(axis=1),
        confusion=confusion,
        top1=float(correct.mean()),
        top3=float((top3 == truth[:, None]).any(axis=1).mean()),
        log_loss=float(-(targets * np.log(np.clip(probabilities, 1e-12, 1))).sum(axis=1).mean()),
        ece=float(ece),
        macro_f1=float(f1.mean()),
        micro_f1=float(correct.mean()),  # single-label: micro precision = recall = F1 = accuracy
        correct=correct,
    )


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[int, int, float]:
    """(a right & b wrong, a wrong & b right, exact two-sided p-value) on paired predictions."""
    only_a = int((a_correct & ~b_correct).sum())
    only_b = int((~a_correct & b_correct).sum())
    n = only_a + only_b
    if n == 0:
        return only_a, only_b, 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return only_a, only_b, min(1.0, 2 * tail)


def fit_ambiguity(probabilities: np.ndarray, targets: np.ndarray, target_precision: float) -> dict[str, Any]:
    """Thresholds on (top-1 probability, top-1 − top-2 margin) keeping the most validation predictions whose
    precision is ≥ ``target_precision``; ties go to the lower thresholds."""
    ordered = np.sort(probabilities, axis=1)
    top, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
    correct = probabilities.argmax(axis=1) == targets.argmax(axis=1)
    best: tuple[float, float, float, float] | None = None  # coverage, precision, p, m
    for p in GRID:
        for m in GRID:
            kept = (top >= p) & (margin >= m)
            if not kept.any():
                continue
            precision, coverage = float(correct[kept].mean()), float(kept.mean())
            if precision >= target_precision and (best is None or coverage > best[0]):
                best = (coverage, precision, float(p), float(m))
    if best is None:
        return {
            "min_top_probability": 1.0,
            "min_margin": 1.0,
            "target_precision": target_precision,
            "validation_coverage": 0.0,
            "validation_precision": None,
            "note": "no threshold reaches the target precision on the validation split: every result is ambiguous",
        }
    coverage, precision, p, m = best
    return {
        "min_top_probability": p,
        "min_margin": m,
        "target_precision": target_precision,
        "validation_coverage": round(coverage, 4),
        "validation_precision": round(precision, 4),
    }


def ambiguous(probabilities: np.ndarray, guard: dict[str, Any]) -> np.ndarray:
    ordered = np.sort(probabilities, axis=1)
    return np.asarray(
        (ordered[:, -1] < guard["min_top_probability"])
        | (ordered[:, -1] - ordered[:, -2] < guard["min_margin"])
    )


def diagnostics(probabilities: np.ndarray, classes: Sequence[str]) -> list[str]:
    """The earlier systems' "auto-class" failure: one class winning most images, or near-uniform outputs."""
    warnings = []
    winners = np.bincount(probabilities.argmax(axis=1), minlength=len(classes))
    share = winners.max() / max(len(probabilities), 1)
    if len(classes) > 2 and share > 0.5:
        warnings.append(f"'{classes[int(winners.argmax())]}' wins {share:.0%} of test images (auto-class?)")
    spread = float((probabilities.max(axis=1) - 1 / len(classes)).mean())
    if spread < 0.05:
        warnings.append(f"probabilities are near uniform (top-1 exceeds 1/K by {spread:.3f} on average)")
    return warnings


def _plot_confusion(metrics: Metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(metrics.classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.45 * k))
    ax.imshow(metrics.confusion, cmap="Blues")
    ax.set_xticks(range(k), metrics.classes, rotation=90)
    ax.set_yticks(range(k), metrics.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for t in range(k):
        for p in range(k):
            if metrics.confusion[t, p]:
                ax.text(p, t, str(metrics.confusion[t, p]), ha="center", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_reliability(probabilities: np.ndarray, metrics: Metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confidence = probabilities.max(axis=1)
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    centres, accuracy = [], []
    for b in range(ECE_BINS):
        if (bins == b).any():
            centres.append((b + 0.5) / ECE_BINS)
            accuracy.append(metrics.correct[bins == b].mean())
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.bar(centres, accuracy, width=1 / ECE_BINS, alpha=0.7, edgecolor="black")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} — ECE {metrics.ece:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_per_class(metrics: Metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(metrics.classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * k), 3.5))
    ax.bar(np.arange(k) - 0.2, metrics.precision, width=0.4, label="precision")
    ax.bar(np.arange(k) + 0.2, metrics.recall, width=0.4, label="recall")
    ax.set_xticks(range(k), metrics.classes, rotation=90)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    folder: Path,
    results: dict[str, tuple[Metrics, np.ndarray]],
    chosen: str,
    rule: str,
    context: dict[str, Any],
    guard: dict[str, Any] | None,
    warnings: Sequence[str],
) -> Path:
    """report.md with the tables, and the PNGs it links, for every head in ``results``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# Head training report", ""]
    lines += [f"- {key}: {value}" for key, value in context.items()]
    lines += [
        "",
        "## Heads on the test split",
        "",
        "| head | top-1 | top-3 | macro F1 | log loss | ECE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, (metrics, _) in results.items():
        s = metrics.summary()
        mark = " **(chosen)**" if name == chosen else ""
        lines.append(
            f"| {name}{mark} | {s['top1_accuracy']:.3f} | {s['top3_accuracy']:.3f} | {s['macro_f1']:.3f} | "
            f"{s['log_loss']:.3f} | {s['ece']:.3f} |"
        )
    lines += ["", f"Choice: {rule}", ""]
    if len(results) > 1:
        lines += [
            "## Paired comparison (McNemar, exact)",
            "",
            "| A | B | A right, B wrong | A wrong, B right | p |",
            "| --- | --- | --- | --- | --- |",
        ]
        names = list(results)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                only_a, only_b, p = mcnemar(results[a][0].correct, results[b][0].correct)
                lines.append(f"| {a} | {b} | {only_a} | {only_b} | {p:.4f} |")
        lines.append("")
    if guard is not None:
        lines += [
            "## Ambiguity guard",
            "",
            f"Fitted on the validation split for precision ≥ {guard['target_precision']}: "
            f"min top probability {guard['min_top_probability']}, min margin {guard['min_margin']}; "
            f"validation coverage {guard['validation_coverage']}, precision {guard['validation_precision']}.",
        ]
        if "test_coverage" in guard:
            lines.append(
                f"On the test split: coverage {guard['test_coverage']}, precision of the kept results "
                f"{guard['test_precision']}."
            )
        lines.append("")
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    for name, (metrics, probabilities) in results.items():
        lines += [
            f"## {name}",
            "",
            "| class | precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- |",
        ]
        for i, label in enumerate(metrics.classes):
            lines.append(
                f"| {label} | {metrics.precision[i]:.3f} | {metrics.recall[i]:.3f} | {metrics.f1[i]:.3f} | "
                f"{int(metrics.support[i])} |"
            )
        pairs = metrics.confused_pairs()
        if pairs:
            lines += [
                "",
                "Most confused (true → predicted): " + "; ".join(f"{t} → {p} ({n})" for t, p, n in pairs),
            ]
        _plot_confusion(metrics, folder / f"{name}_confusion.png", f"{name}: confusion (test)")
        _plot_reliability(probabilities, metrics, folder / f"{name}_reliability.png", name)
        _plot_per_class(metrics, folder / f"{name}_per_class.png", f"{name}: precision / recall")
        lines += [
            "",
            f"![confusion]({name}_confusion.png) ![reliability]({name}_reliability.png) "
            f"![per class]({name}_per_class.png)",
            "",
        ]
    report = folder / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report

"""Shadow evaluation's arithmetic: a candidate head and the active head on the same stored embeddings.

Pure NumPy over arrays (no AWS, no items): :meth:`EvaluationFigures.add` takes one page's embeddings,
already decoded, and both heads; figures from any number of pages and segments are summed with
:meth:`EvaluationFigures.merge` (every figure is a count, a sum or a maximum, so the order does not
matter), and :func:`build_report` turns the total into the report ``heads show`` prints.

For items that carry a person's label (``personLabel``, the review loop's), it also counts what McNemar's
test needs: b = items the candidate gets right and the active head wrong, c = the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.forward import Head

#: Example items kept per flip (active top → candidate top) and for the largest probability changes.
EXAMPLES = 3
#: Flips listed in the report, largest first (the full matrix is in ``flipMatrix``).
LARGEST_FLIPS = 10
#: What a person's label may say when none of the classes fits (it is wrong for both heads).
NONE_OF_THESE = "none of these"


class Example(CamelModel):
    picture_id: str
    active: str
    candidate: str
    change: float


class EvaluationFigures(CamelModel):
    """Counts and sums for some pages of stored items (a part; the report merges all parts)."""

    #: Items that were not scored, by reason (another embedder, no embedding, API result, failed, ...).
    not_compared: dict[str, int] = Field(default_factory=dict)
    compared: int = 0
    agree: int = 0
    #: ``active label → candidate label → items`` (disagreements only).
    flips: dict[str, dict[str, int]] = Field(default_factory=dict)
    #: A few items of each flip.
    flip_examples: dict[str, list[str]] = Field(default_factory=dict)
    before: dict[str, int] = Field(default_factory=dict)
    after: dict[str, int] = Field(default_factory=dict)
    #: ``None``: that head has no ambiguity guard.
    ambiguous_before: int | None = None
    ambiguous_after: int | None = None
    #: The largest change of any label's probability, per item: its sum and the largest items.
    change_sum: float = 0.0
    largest_changes: list[Example] = Field(default_factory=list)
    labelled: int = 0
    active_correct: int = 0
    candidate_correct: int = 0
    #: McNemar's discordant pairs: the candidate right and the active head wrong (b), and the reverse (c).
    candidate_only: int = 0
    active_only: int = 0
    #: Per head, per label: [true positives, false positives, false negatives] on labelled items.
    active_confusion: dict[str, list[int]] = Field(default_factory=dict)
    candidate_confusion: dict[str, list[int]] = Field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        self.not_compared[reason] = self.not_compared.get(reason, 0) + count

    def add(
        self,
        picture_ids: Sequence[str],
        embeddings: np.ndarray,
        active: Head,
        candidate: Head,
        person_labels: Sequence[str | None] | None = None,
    ) -> None:
        """Score ``embeddings`` ([N, dim] float32, as the heads take them) with both heads and count."""
        if not len(picture_ids):
            return
        _, p_active = active.forward(embeddings)
        _, p_candidate = candidate.forward(embeddings)
        top_active = [active.classes[i] for i in np.argmax(p_active, axis=1)]
        top_candidate = [candidate.classes[i] for i in np.argmax(p_candidate, axis=1)]
        change = _largest_change(active.classes, p_active, candidate.classes, p_candidate)
        self.compared += len(picture_ids)
        for pid, a, c in zip(picture_ids, top_active, top_candidate, strict=True):
            self.before[a] = self.before.get(a, 0) + 1
            self.after[c] = self.after.get(c, 0) + 1
            if a == c:
                self.agree += 1
                continue
            row = self.flips.setdefault(a, {})
            row[c] = row.get(c, 0) + 1
            examples = self.flip_examples.setdefault(f"{a}\t{c}", [])
            if len(examples) < EXAMPLES:
                examples.append(pid)
        for head, attr in ((active, "ambiguous_before"), (candidate, "ambiguous_after")):
            flags = head.ambiguous(p_active if head is active else p_candidate)
            if flags is not None:
                setattr(self, attr, (getattr(self, attr) or 0) + int(flags.sum()))
        self.change_sum += float(change.sum(dtype=np.float64))
        for i in np.argsort(-change, kind="stable")[:EXAMPLES]:
            self.largest_changes.append(
                Example(
                    picture_id=picture_ids[i],
                    active=top_active[i],
                    candidate=top_candidate[i],
                    change=float(change[i]),
                )
            )
        self.largest_changes = _top_examples(self.largest_changes)
        if person_labels is not None:
            for label, a, c in zip(person_labels, top_active, top_candidate, strict=True):
                if label:
                    self._add_labelled(label, a, c)

    def _add_labelled(self, label: str, active: str, candidate: str) -> None:
        self.labelled += 1
        right_a, right_c = active == label, candidate == label
        self.active_correct += right_a
        self.candidate_correct += right_c
        self.candidate_only += right_c and not right_a
        self.active_only += right_a and not right_c
        for confusion, predicted in ((self.active_confusion, active), (self.candidate_confusion, candidate)):
            if predicted == label:
                confusion.setdefault(label, [0, 0, 0])[0] += 1
            else:
                confusion.setdefault(predicted, [0, 0, 0])[1] += 1
                if label != NONE_OF_THESE:
                    confusion.setdefault(label, [0, 0, 0])[2] += 1

    def merge(self, other: EvaluationFigures) -> EvaluationFigures:
        """The sum of two parts (a new object)."""
        merged = self.model_copy(deep=True)
        for name in ("not_compared", "before", "after"):
            target = getattr(merged, name)
            for key, value in getattr(other, name).items():
                target[key] = target.get(key, 0) + value
        for a, row in other.flips.items():
            mine = merged.flips.setdefault(a, {})
            for c, n in row.items():
                mine[c] = mine.get(c, 0) + n
        for key, ids in other.flip_examples.items():
            merged.flip_examples[key] = (merged.flip_examples.get(key, []) + ids)[:EXAMPLES]
        for name in (
            "compared",
            "agree",
            "labelled",
            "active_correct",
            "candidate_correct",
            "candidate_only",
            "active_only",
        ):
            setattr(merged, name, getattr(merged, name) + getattr(other, name))
        for name in ("ambiguous_before", "ambiguous_after"):
            mine, theirs = getattr(merged, name), getattr(other, name)
            setattr(merged, name, None if mine is None and theirs is None else (mine or 0) + (theirs or 0))
        merged.change_sum += other.change_sum
        merged.largest_changes = _top_examples(merged.largest_changes + other.largest_changes)
        for name in ("active_confusion", "candidate_confusion"):
            target = getattr(merged, name)
            for label, counts in getattr(other, name).items():
                target[label] = [x + y for x, y in zip(target.get(label, [0, 0, 0]), counts, strict=True)]
        return merged


def _top_examples(examples: list[Example]) -> list[Example]:
    return sorted(examples, key=lambda e: (-e.change, e.picture_id))[:EXAMPLES]


def _largest_change(
    classes_a: Sequence[str], p_a: np.ndarray, classes_c: Sequence[str], p_c: np.ndarray
) -> np.ndarray:
    """Per row, the largest absolute change of any label's probability (a label one head lacks has
    probability 0 under it)."""
    if list(classes_a) == list(classes_c):
        return np.asarray(np.abs(p_c.astype(np.float64) - p_a).max(axis=1))
    labels = sorted(set(classes_a) | set(classes_c))
    index = {label: i for i, label in enumerate(labels)}
    wide_a = np.zeros((len(p_a), len(labels)))
    wide_c = np.zeros((len(p_c), len(labels)))
    wide_a[:, [index[label] for label in classes_a]] = p_a
    wide_c[:, [index[label] for label in classes_c]] = p_c
    return np.asarray(np.abs(wide_c - wide_a).max(axis=1))


def mcnemar(b: int, c: int) -> dict[str, Any]:
    """McNemar's test on the discordant pairs: the exact two-sided binomial p-value (b + c < 25) or the
    chi-squared statistic with continuity correction and its p-value."""
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "method": "none", "pValue": None}
    if n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return {"b": b, "c": c, "method": "exact binomial", "pValue": min(1.0, 2 * tail)}
    statistic = (abs(b - c) - 1) ** 2 / n
    return {
        "b": b,
        "c": c,
        "method": "chi-squared, continuity-corrected",
        "statistic": statistic,
        "pValue": math.erfc(math.sqrt(statistic / 2)),  # the chi-squared (1 df) survival function
    }


def macro_f1(confusion: dict[str, list[int]], labels: Sequence[str]) -> float | None:
    """The unweighted mean of per-label F1 over the labels people gave (``labels``)."""
    scores = []
    for label in labels:
        tp, fp, fn = confusion.get(label, [0, 0, 0])
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / len(scores) if scores else None


def build_report(figures: EvaluationFigures, *, candidate: Head, active: Head) -> dict[str, Any]:
    """The report: what ``heads show`` prints and the reports bucket keeps (JSON)."""
    compared = figures.compared
    flips = sorted(
        ((a, c, n) for a, row in figures.flips.items() for c, n in row.items()),
        key=lambda f: (-f[2], f[0], f[1]),
    )
    person_labels = sorted(
        {label for label, (tp, _, fn) in figures.candidate_confusion.items() if tp + fn}
        | {label for label, (tp, _, fn) in figures.active_confusion.items() if tp + fn}
    )

    def rate(count: int | None) -> float | None:
        return None if count is None or not compared else count / compared

    labelled = figures.labelled
    return {
        "candidate": {
            "version": candidate.version,
            "headType": candidate.head_type,
            "classes": list(candidate.classes),
        },
        "active": {"version": active.version, "headType": active.head_type, "classes": list(active.classes)},
        "compared": compared,
        "notCompared": dict(sorted(figures.not_compared.items())),
        "agreement": figures.agree / compared if compared else None,
        "flips": compared - figures.agree,
        "largestFlips": [
            {"active": a, "candidate": c, "items": n, "examples": figures.flip_examples.get(f"{a}\t{c}", [])}
            for a, c, n in flips[:LARGEST_FLIPS]
        ],
        "flipMatrix": figures.flips,
        "distribution": {
            label: {"before": figures.before.get(label, 0), "after": figures.after.get(label, 0)}
            for label in dict.fromkeys([*active.classes, *candidate.classes])
        },
        "ambiguousRate": {"before": rate(figures.ambiguous_before), "after": rate(figures.ambiguous_after)},
        "probabilityChange": {
            "mean": figures.change_sum / compared if compared else None,
            "largest": [e.model_dump(by_alias=True) for e in figures.largest_changes],
        },
        "labelled": {
            "items": labelled,
            "activeAccuracy": figures.active_correct / labelled if labelled else None,
            "candidateAccuracy": figures.candidate_correct / labelled if labelled else None,
            "activeMacroF1": macro_f1(figures.active_confusion, person_labels) if labelled else None,
            "candidateMacroF1": macro_f1(figures.candidate_confusion, person_labels) if labelled else None,
            "mcnemar": mcnemar(figures.candidate_only, figures.active_only),
        },
    }

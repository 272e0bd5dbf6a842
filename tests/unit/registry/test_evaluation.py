"""Shadow evaluation's arithmetic against a direct NumPy computation of the same quantities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import WeightsDocument, document_sha256, parse_weights
from clip_classifier.registry.evaluation import EvaluationFigures, build_report, macro_f1, mcnemar
from clip_local.heads import reseeded_head
from clip_local.paths import EXAMPLE_WEIGHTS
from tests.fakes.heads import example_head

N = 600


@pytest.fixture(scope="module")
def heads() -> tuple[Head, Head]:
    return example_head(), Head(parse_weights(reseeded_head(EXAMPLE_WEIGHTS, seed=5)))


@pytest.fixture(scope="module")
def embeddings() -> np.ndarray:
    x = np.random.default_rng(7).normal(size=(N, 512)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct(active: Head, candidate: Head, x: np.ndarray) -> dict[str, object]:
    _, pa = active.forward(x)
    _, pc = candidate.forward(x)
    ta, tc = pa.argmax(axis=1), pc.argmax(axis=1)
    flips: dict[tuple[str, str], int] = {}
    for a, c in zip(ta, tc, strict=True):
        if a != c:
            key = (active.classes[a], candidate.classes[c])
            flips[key] = flips.get(key, 0) + 1
    change = np.abs(pc.astype(np.float64) - pa).max(axis=1)
    return {
        "agree": int((ta == tc).sum()),
        "flips": flips,
        "before": np.bincount(ta, minlength=len(active.classes)),
        "after": np.bincount(tc, minlength=len(candidate.classes)),
        "mean_change": float(change.mean()),
        "max_change": float(change.max()),
        "argmax_change": int(change.argmax()),
    }


def test_the_report_equals_a_direct_numpy_computation(
    heads: tuple[Head, Head], embeddings: np.ndarray
) -> None:
    active, candidate = heads
    ids = [f"p{i}" for i in range(N)]
    figures = EvaluationFigures()
    figures.add(ids, embeddings, active, candidate)
    figures.skip("api", 3)
    report = build_report(figures, candidate=candidate, active=active)
    expected = direct(active, candidate, embeddings)
    assert report["compared"] == N and report["notCompared"] == {"api": 3}
    assert report["agreement"] == expected["agree"] / N
    assert report["flips"] == N - expected["agree"] > 0
    matrix = {(a, c): n for a, row in report["flipMatrix"].items() for c, n in row.items()}
    assert matrix == expected["flips"]
    largest = report["largestFlips"][0]
    assert largest["items"] == max(expected["flips"].values())
    assert all(ids.index(pid) >= 0 for pid in largest["examples"]) and 1 <= len(largest["examples"]) <= 3
    for i, label in enumerate(active.classes):
        assert report["distribution"][label] == {
            "before": expected["before"][i],
            "after": expected["after"][i],
        }
    assert report["probabilityChange"]["mean"] == pytest.approx(expected["mean_change"], rel=1e-9)
    top = report["probabilityChange"]["largest"][0]
    assert top["change"] == pytest.approx(expected["max_change"], rel=1e-9)
    assert top["pictureId"] == ids[expected["argmax_change"]]  # type: ignore[index]
    assert report["ambiguousRate"] == {"before": None, "after": None}  # neither head has a guard
    assert report["labelled"]["items"] == 0 and report["labelled"]["mcnemar"]["pValue"] is None


@pytest.mark.parametrize("cuts", [[1], [100, 101, 350], [599]])
def test_parts_merge_to_the_whole_in_any_order(
    heads: tuple[Head, Head], embeddings: np.ndarray, cuts: list[int]
) -> None:
    active, candidate = heads
    ids = [f"p{i}" for i in range(N)]
    whole = EvaluationFigures()
    whole.add(ids, embeddings, active, candidate)
    parts = []
    for start, end in zip([0, *cuts], [*cuts, N], strict=True):
        part = EvaluationFigures()
        part.add(ids[start:end], embeddings[start:end], active, candidate)
        parts.append(
            EvaluationFigures.model_validate_json(part.model_dump_json(by_alias=True))
        )  # via S3's JSON
    merged = EvaluationFigures()
    for part in reversed(parts):
        merged = merged.merge(part)
    for name in ("compared", "agree", "flips", "before", "after", "largest_changes"):
        assert getattr(merged, name) == getattr(whole, name), name
    assert merged.change_sum == pytest.approx(whole.change_sum, rel=1e-12)


def test_labelled_items_give_accuracy_macro_f1_and_mcnemar(
    heads: tuple[Head, Head], embeddings: np.ndarray
) -> None:
    active, candidate = heads
    x = embeddings[:200]
    ta = [active.classes[i] for i in active.forward(x)[1].argmax(axis=1)]
    tc = [candidate.classes[i] for i in candidate.forward(x)[1].argmax(axis=1)]
    # People agree with the candidate on the first 120 items and with the active head on the next 50; the
    # last 30 are "none of these".
    labels = [*tc[:120], *ta[120:170], *(["none of these"] * 30)]
    figures = EvaluationFigures()
    figures.add([f"p{i}" for i in range(200)], x, active, candidate, labels)
    report = build_report(figures, candidate=candidate, active=active)["labelled"]
    truth = np.array(labels)
    right_a, right_c = np.array(ta) == truth, np.array(tc) == truth
    assert report["items"] == 200
    assert report["activeAccuracy"] == right_a.mean() and report["candidateAccuracy"] == right_c.mean()
    assert report["mcnemar"]["b"] == int((right_c & ~right_a).sum())
    assert report["mcnemar"]["c"] == int((right_a & ~right_c).sum())
    given = sorted(set(labels) - {"none of these"})

    def f1(predicted: list[str]) -> float:
        scores = []
        for label in given:
            tp = sum(p == t == label for p, t in zip(predicted, labels, strict=True))
            fp = sum(p == label != t for p, t in zip(predicted, labels, strict=True))
            fn = sum(t == label != p for p, t in zip(predicted, labels, strict=True))
            scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        return sum(scores) / len(scores)

    assert report["activeMacroF1"] == pytest.approx(f1(ta))
    assert report["candidateMacroF1"] == pytest.approx(f1(tc))


def test_mcnemar_matches_the_reference_values() -> None:
    # scipy.stats.binomtest(1, 9).pvalue and scipy.stats.chi2.sf(9.025, 1)
    assert mcnemar(1, 8)["pValue"] == pytest.approx(0.0390625, abs=1e-12)
    assert mcnemar(8, 1)["pValue"] == pytest.approx(0.0390625, abs=1e-12)
    chi = mcnemar(30, 10)
    assert chi["statistic"] == pytest.approx(9.025) and chi["pValue"] == pytest.approx(
        0.002663119259138558, rel=1e-9
    )
    assert mcnemar(5, 5)["pValue"] == 1.0
    assert macro_f1({}, []) is None


def test_heads_with_other_classes_and_a_guard(embeddings: np.ndarray) -> None:
    doc = json.loads(EXAMPLE_WEIGHTS.read_text())
    renamed = dict(doc, classes=[f"{c}-2" if i < 2 else c for i, c in enumerate(doc["classes"])])
    renamed["ambiguity"] = {"min_top_probability": 0.5, "min_margin": 0.1}
    unhashed = WeightsDocument.model_validate(renamed)
    guarded = Head(unhashed.model_copy(update={"content_sha256": document_sha256(unhashed)}))
    active = example_head()
    figures = EvaluationFigures()
    x = embeddings[:100]
    figures.add([f"p{i}" for i in range(100)], x, active, guarded)
    report = build_report(figures, candidate=guarded, active=active)
    _, pa = active.forward(x)
    _, pc = guarded.forward(x)
    # A label only one head has counts as probability 0 under the other.
    labels = list(dict.fromkeys([*active.classes, *guarded.classes]))
    wide_a = np.array(
        [[dict(zip(active.classes, row, strict=True)).get(lb, 0.0) for lb in labels] for row in pa]
    )
    wide_c = np.array(
        [[dict(zip(guarded.classes, row, strict=True)).get(lb, 0.0) for lb in labels] for row in pc]
    )
    assert report["probabilityChange"]["mean"] == pytest.approx(np.abs(wide_c - wide_a).max(axis=1).mean())
    assert set(report["distribution"]) == set(labels)
    flags = guarded.ambiguous(pc)
    assert flags is not None
    assert report["ambiguousRate"] == {"before": None, "after": flags.mean()}

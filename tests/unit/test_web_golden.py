"""The browser client's golden data (web/test/golden.json) is what the Python pipeline computes today, so the
JavaScript tests (``npm test`` in web/, run by ``make test``) compare with the current pipeline.

Everything but the embeddings is compared for equality (the transform is exact integer and float32 work
that no CPU changes). The embeddings come from onnxruntime, whose int8 kernels differ by CPU, so they are
held to the generator's stated tolerances: the committed file must hold on any x86-64 machine CI may use.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from clip_local.paths import REPO_ROOT
from tests.fixtures.make_web_golden import (
    FP32_MAX_ABS_DIFF,
    FP32_MIN_COSINE,
    GOLDEN,
    INT8_MIN_COSINE,
    golden,
    pattern,
)

EMBEDDINGS = ("embedding", "embedding_fp32")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def without_embeddings(document: dict[str, Any]) -> dict[str, Any]:
    tensors = [{k: v for k, v in t.items() if k not in EMBEDDINGS} for t in document["tensors"]]
    return {**document, "tensors": tensors}


@pytest.fixture(scope="module")
def documents() -> tuple[dict[str, Any], dict[str, Any]]:
    committed = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return committed, json.loads(json.dumps(golden()))


def test_the_committed_golden_file_is_current(documents: tuple[dict[str, Any], dict[str, Any]]) -> None:
    committed, current = documents
    assert without_embeddings(committed) == without_embeddings(current), (
        "run: python tests/fixtures/make_web_golden.py"
    )


def test_the_committed_embeddings_hold_on_this_cpu(documents: tuple[dict[str, Any], dict[str, Any]]) -> None:
    committed, current = documents
    pairs = [
        (a, b) for a, b in zip(committed["tensors"], current["tensors"], strict=True) if "embedding" in b
    ]
    assert len(pairs) == 2
    for old, new in pairs:
        assert set(EMBEDDINGS) <= old.keys(), "run: python tests/fixtures/make_web_golden.py"
        int8_old, int8_new = np.asarray(old["embedding"]), np.asarray(new["embedding"])
        assert cosine(int8_old, int8_new) >= INT8_MIN_COSINE
        fp32_old, fp32_new = np.asarray(old["embedding_fp32"]), np.asarray(new["embedding_fp32"])
        assert cosine(fp32_old, fp32_new) >= FP32_MIN_COSINE
        assert float(np.abs(fp32_old - fp32_new).max()) <= FP32_MAX_ABS_DIFF


def test_the_tolerances_can_fail(documents: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The check above is not vacuous: the int8 and fp32 graphs are further apart than either tolerance, and
    a small shift of one component breaks the fp32 bound."""
    _, current = documents
    entry = next(t for t in current["tensors"] if "embedding" in t)
    int8, fp32 = np.asarray(entry["embedding"]), np.asarray(entry["embedding_fp32"])
    assert float(np.abs(int8 - fp32).max()) > FP32_MAX_ABS_DIFF
    shifted = fp32.copy()
    shifted[0] += 10 * FP32_MAX_ABS_DIFF
    assert float(np.abs(shifted - fp32).max()) > FP32_MAX_ABS_DIFF


def test_the_javascript_test_uses_the_same_tolerances(
    documents: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    committed, _ = documents
    assert committed["tolerances"] == {
        "int8_min_cosine": INT8_MIN_COSINE,
        "fp32_min_cosine": FP32_MIN_COSINE,
        "fp32_max_abs_diff": FP32_MAX_ABS_DIFF,
    }
    twin = (REPO_ROOT / "web" / "test" / "preprocess.test.js").read_text(encoding="utf-8")
    assert "golden.tolerances.int8_min_cosine" in twin and "golden.tolerances.fp32_min_cosine" in twin


def test_the_pattern_has_texture_and_both_languages_share_it() -> None:
    image = pattern(64, 48, 3, 2)
    assert image.shape == (48, 64, 3) and len({int(v) for v in image.reshape(-1)}) > 200
    # The JavaScript twin names the same constants (a cheap guard against editing only one of them).
    twin = (REPO_ROOT / "web" / "test" / "pattern.js").read_text(encoding="utf-8")
    for constant in ("73856093", "19349663", "83492791", "2654435761", "& 63", "* 85"):
        assert constant in twin

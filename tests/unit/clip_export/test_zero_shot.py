"""Zero-shot head building blocks: class and prompt files, prototypes, the head document, WiSE-FT."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_export.head_files import head_document
from clip_export.prompt_templates import OPENAI_7, OPENAI_80, SINGLE
from clip_export.zero_shot import (
    class_prototypes,
    from_templates,
    read_classes,
    read_prompts,
    wise_ft,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_template_sets_are_the_published_ones() -> None:
    assert len(OPENAI_80) == len(set(OPENAI_80)) == 80 and set(OPENAI_7) <= set(OPENAI_80)
    assert SINGLE == ("a photo of a {}.",) and all(t.count("{}") == 1 for t in OPENAI_80)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no class labels"),
        ("# only a comment\n\n", "no class labels"),
        ("dog\ncat\ndog\n", 'classes\\[2\\] "dog" repeats classes\\[0\\] "dog"'),
        ("Dog\ncat\ndog\n", 'classes\\[2\\] "dog" repeats classes\\[0\\] "Dog"'),
        ("dog\n", "at least 2 classes"),
        ("dog\nca\x07t\n", "U\\+0007, which is not allowed in a label"),
        ("dog\n" + "x" * 129 + "\n", "has 129 characters"),
        ("dog\nca\u202et\n", "U\\+202E"),
        ("".join(f"c{i}\n" for i in range(1001)), "1001 classes; at most 1000"),
        ("".join(f"class number {i}\n" for i in range(900)), "over Lambda's 6,291,456-byte response limit"),
    ],
)
def test_bad_class_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        read_classes(write(tmp_path, "classes.txt", text))


def test_labels_are_read_in_nfc_so_they_match_the_prompts(tmp_path: Path) -> None:
    decomposed = "cafe\u0301"  # é as e + combining accent
    classes = read_classes(write(tmp_path, "c.txt", f"{decomposed}\ndog\n"))
    assert classes == ["caf\u00e9", "dog"]
    prompts = read_prompts(write(tmp_path, "p.txt", f"{decomposed}: a café\ndog: a dog\n"), classes)
    assert prompts["caf\u00e9"] == ["a café"]


def test_the_builder_says_in_one_line_when_there_is_no_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from clip_local.paths import REPO_ROOT

    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "weights" / "zero_shot_head.py"), "--classes",
         str(REPO_ROOT / "weights" / "example" / "classes.txt"), "--model-dir", str(tmp_path / "vit-b-32" / "int8"),
         "--out", str(tmp_path / "head.json")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"--model-dir {tmp_path / 'vit-b-32' / 'int8'}: model manifest {tmp_path / 'vit-b-32' / 'int8' / 'manifest.json'} "
        "does not exist (export one with 'make model', or pass another folder)"
    ]


def test_prompt_files(tmp_path: Path) -> None:
    classes = ["group photo", "screenshot"]
    prompts = read_prompts(
        write(
            tmp_path,
            "p.txt",
            "group photo: friends posing together\n# note\nscreenshot: a phone screen\n"
            "group photo: a team photo\n",
        ),
        classes,
    )
    assert prompts == {
        "group photo": ["friends posing together", "a team photo"],
        "screenshot": ["a phone screen"],
    }
    with pytest.raises(SystemExit, match="labels not in the classes: selfie"):
        read_prompts(write(tmp_path, "u.txt", "selfie: me\ngroup photo: us\nscreenshot: s\n"), classes)
    with pytest.raises(SystemExit, match="no prompts for classes: screenshot"):
        read_prompts(write(tmp_path, "m.txt", "group photo: us\n"), classes)
    with pytest.raises(SystemExit, match=r"p2.txt:1: expected 'label: description'"):
        read_prompts(write(tmp_path, "p2.txt", "just text\n"), classes)
    assert from_templates(classes, SINGLE) == {
        "group photo": ["a photo of a group photo."],
        "screenshot": ["a photo of a screenshot."],
    }


def softmax_head(classes: list[str], weight: np.ndarray, bias: np.ndarray, head_type: str) -> dict[str, Any]:
    return head_document(
        classes, [(weight, bias)], output="softmax", head_type=head_type, training={}, exported_by="test"
    )


class FixedEncoder:
    """Embeddings chosen by hand, to check the ensembling arithmetic."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed(self, texts: list[str], batch: int = 64) -> np.ndarray:
        return np.asarray([self.table[t] for t in texts], dtype=np.float64)


def test_prototypes_normalise_each_prompt_then_the_mean() -> None:
    encoder = FixedEncoder({"a": [10.0, 0.0], "b": [0.0, 0.1], "c": [3.0, 4.0]})
    protos = class_prototypes(encoder, {"x": ["a", "b"], "y": ["c"]})
    # Each prompt counts equally whatever its norm: mean of (1,0) and (0,1), then unit length.
    np.testing.assert_allclose(protos, [[2**-0.5, 2**-0.5], [0.6, 0.8]], atol=1e-12)


def test_the_head_is_clip_softmax_of_scaled_cosines() -> None:
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 8))
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)
    doc = softmax_head(["a", "b", "c"], protos * 100.0, np.zeros(3), "zero_shot")
    head = Head(parse_weights(json.dumps(doc)))
    image = rng.normal(size=(5, 8)).astype(np.float32) * 7.0
    _, probs = head.forward(image)
    logits = 100.0 * (image / np.linalg.norm(image, axis=1, keepdims=True)) @ protos.T
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_wise_ft_interpolates_weights_and_checks_compatibility() -> None:
    rng = np.random.default_rng(1)
    a = parse_weights(json.dumps(softmax_head(["x", "y"], rng.normal(size=(2, 4)), np.zeros(2), "zero_shot")))
    b = parse_weights(json.dumps(softmax_head(["x", "y"], rng.normal(size=(2, 4)), np.ones(2), "logreg")))
    mid = parse_weights(json.dumps(wise_ft(a, b, 0.25)))
    (wa, ba), (wb, bb), (wm, bm) = a.arrays()[0], b.arrays()[0], mid.arrays()[0]
    np.testing.assert_allclose(wm, 0.75 * wa + 0.25 * wb, atol=1e-6)
    np.testing.assert_allclose(bm, 0.75 * ba + 0.25 * bb, atol=1e-6)
    # α = 0 is the zero-shot head exactly: the same version (content sha256 covers what predicts).
    assert parse_weights(json.dumps(wise_ft(a, b, 0.0))).content_sha256 == a.content_sha256
    np.testing.assert_array_equal(parse_weights(json.dumps(wise_ft(a, b, 1.0))).arrays()[0][0], wb)
    with pytest.raises(ValueError, match="alpha must be in"):
        wise_ft(a, b, 1.5)
    other = parse_weights(json.dumps(softmax_head(["y", "x"], np.eye(2, 4), np.zeros(2), "logreg")))
    with pytest.raises(ValueError, match="same classes"):
        wise_ft(a, other, 0.5)

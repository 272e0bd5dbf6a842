"""The trainer's refusals: every bad input is one line naming the file, row or option, before any training,
and never a traceback. docs/heads.md's table of bad inputs is this list (a test keeps them in step)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")

from clip_classifier.model.manifest import load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from weights.train_head import main

pytestmark = pytest.mark.export
MODEL_SHA = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").model_sha256
RNG = np.random.default_rng(0)


def npz(tmp: Path, features: object, labels: object = None, model: str = MODEL_SHA) -> Path:
    path = tmp / "features.npz"
    rows = len(features) if hasattr(features, "__len__") else 4  # type: ignore[arg-type]
    np.savez(
        path,
        features=features,
        labels=labels if labels is not None else ["a", "b"] * (rows // 2),
        model_sha256=model,
    )
    return path


def images(tmp: Path, *classes: str, per_class: int = 4) -> Path:
    root = tmp / "images"
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (32, 32), (40 * index, 7 * i, 90)).save(folder / f"{i}.png")
    return root


def features(rows: int = 8) -> np.ndarray:
    return RNG.normal(size=(rows, 512)).astype(np.float32)


def nan_row(tmp: Path) -> list[str]:
    bad = features()
    bad[3, 5] = np.nan
    return ["--features", str(npz(tmp, bad))]


def inf_row(tmp: Path) -> list[str]:
    bad = features().astype(np.float64)
    bad[2, 0] = np.inf
    return ["--features", str(npz(tmp, bad))]


def zero_row(tmp: Path) -> list[str]:
    bad = features()
    bad[1] = 0
    return ["--features", str(npz(tmp, bad))]


def bool_features(tmp: Path) -> list[str]:
    return ["--features", str(npz(tmp, features() > 0))]


def object_features(tmp: Path) -> list[str]:
    path = tmp / "features.npz"
    np.savez(
        path, features=np.array([object()] * 8, dtype=object), labels=["a", "b"] * 4, model_sha256=MODEL_SHA
    )
    return ["--features", str(path)]


def other_model(tmp: Path) -> list[str]:
    return ["--features", str(npz(tmp, features(), model="f" * 64))]


def csv_rows(tmp: Path, *rows: str) -> list[str]:
    root = images(tmp, "a", "b")
    path = tmp / "labels.csv"
    path.write_text("\n".join(row.replace("IMG", str(root / "a" / "0.png")) for row in rows) + "\n")
    return ["--labels", str(path)]


#: (case, the arguments it adds, the message: the whole line the trainer prints)
CASES: list[tuple[str, Callable[[Path], list[str]], str]] = [
    ("a NaN in the features", nan_row, "row 3 has a value that is not a finite number"),
    ("an infinity in the features", inf_row, "row 2 has a value that is not a finite number"),
    ("an all-zero feature row", zero_row, "row 1 is all zeros (it has no direction)"),
    ("boolean features", bool_features, "features must be an [N, D] array of numbers, got bool"),
    ("an object array (pickled)", object_features, "not a readable .npz file"),
    ("features of another model", other_model, "were computed by model ffffffffffff…"),
    ("a soft label weight NaN", lambda t: csv_rows(t, "IMG,a:nan;b:1"), "weight 'nan' must be a finite number >= 0"),
    ("soft label weights not summing to 1", lambda t: csv_rows(t, "IMG,a:0.5;b:0.4"), "soft label weights must sum to 1, got 0.9"),
    ("a blank label", lambda t: csv_rows(t, "IMG,a", "IMG, "), 'classes[0] "" is blank'),
    ("a label with a control character", lambda t: csv_rows(t, "IMG,a", "IMG,b\x07"), "has the character U+0007, which is not allowed in a label"),
    ("a label of 129 characters", lambda t: csv_rows(t, "IMG,a", "IMG," + "x" * 129), "has 129 characters; at most 128 are allowed"),
    ("labels equal but for case", lambda t: ["--images", str(images(t, "Pet", "pet"))], 'classes[1] "pet" repeats classes[0] "Pet"'),
    ("--images naming no folder", lambda t: ["--images", str(t / "absent")], "is not a folder"),
    ("--model-dir before make model", lambda t: ["--images", str(images(t, "a", "b")), "--model-dir", str(t / "vit-b-32" / "int8")], "manifest.json does not exist (export one with 'make model', or pass another folder)"),
    ("--target-precision 1.5", lambda t: ["--features", str(npz(t, features())), "--target-precision", "1.5"], "--target-precision must be in (0, 1]"),
    ("--folds 1", lambda t: ["--features", str(npz(t, features())), "--folds", "1"], "--folds must be between 2 and 100"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "arguments", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_before_any_work(
    case: str,
    arguments: Callable[[Path], list[str]],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*arguments(tmp_path), "--head-type", "prototype", "--out", str(tmp_path / "head.json"), "--quiet",
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    with pytest.raises(SystemExit) as info:
        main(argv)
    printed = str(info.value.code) if info.value.code not in (None, 0, 2) else capsys.readouterr().err.strip()
    assert message in printed, printed
    assert "\n" not in printed.strip().splitlines()[-1] and "Traceback" not in printed
    assert not (tmp_path / "head.json").exists()


def test_the_docs_table_lists_every_case() -> None:
    page = (REPO_ROOT / "docs" / "heads.md").read_text(encoding="utf-8")
    for case, _, message in CASES:
        assert f"| {case} |" in page, case
        assert message.split("…")[0] in page, message


def test_features_at_any_scale_train_like_unit_vectors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API scores any finite scale as the unit vector; the trainer now trains that way too."""
    labels = np.repeat(np.arange(3), 20)
    centres = RNG.normal(size=(3, 512))
    rows = centres[labels] + 0.3 * RNG.normal(size=(60, 512))
    heads = []
    for scale in (1.0, 1e30, 1e-30):
        path = tmp_path / f"f{scale}.npz"
        np.savez(path, features=rows * scale, labels=[f"c{i}" for i in labels], model_sha256=MODEL_SHA)
        out = tmp_path / f"head{scale}.json"
        assert main(["--features", str(path), "--head-type", "prototype", "--out", str(out), "--quiet"]) == 0
        heads.append(out.read_text())
    assert "c0" in capsys.readouterr().out or True
    assert len({h.split('"content_sha256"')[1] for h in heads}) == 1  # the same head at every scale


def test_unreadable_entries_and_link_loops_are_listed_as_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = images(tmp_path, "a", "b")
    os.symlink(root / "a" / "loop", root / "a" / "loop")  # a link to itself
    os.symlink(root, root / "b" / "up")  # a link to a folder above
    (root / "a" / "broken.png").symlink_to(tmp_path / "nowhere.png")
    assert main(["--images", str(root), "--head-type", "prototype", "--out", str(tmp_path / "h.json"), "--quiet",
                 "--cache-dir", str(tmp_path / "cache")]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "skipped 3 unreadable file(s)" in err
    assert "loop (a link to nothing readable)" in err and "broken.png (a link to nothing readable)" in err
    assert "up (a link to a folder: not followed)" in err

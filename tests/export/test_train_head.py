"""weights/train_head.py: parity of each head with its reference library, real labelled images end to end
(scikit-learn's 1,797 handwritten digits), the deployed head serving the same predictions, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clip_classifier.head.weights_format import parse_weights
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR

torch = pytest.importorskip("torch")
sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="the 'train' extra")
pytestmark = pytest.mark.export

from clip_export.head_training import (  # noqa: E402
    LOGREG,
    TrainOptions,
    stratified_split,
    train_logreg,
    train_mlp,
    train_prototype,
    unit,
)
from clip_export.training_data import Dataset  # noqa: E402

SCRIPT = REPO_ROOT / "weights" / "train_head.py"


def train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=900
    )


def clusters(k: int = 4, per_class: int = 40, dim: int = 512, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    features = np.concatenate([c + 1.5 * rng.normal(size=(per_class, dim)) for c in centres]).astype(
        np.float32
    )
    targets = np.repeat(np.eye(k), per_class, axis=0)
    return Dataset([f"c{i}" for i in range(k)], features, targets, [f"row{i}" for i in range(len(features))])


def test_logreg_agrees_with_scikit_learn_fitted_on_the_same_data() -> None:
    from sklearn.linear_model import LogisticRegression

    data = clusters()
    split = stratified_split(data.hard, data.classes, seed=0)
    lines: list[str] = []
    trained = train_logreg(data, split, TrainOptions(progress=lines.append))
    # scikit-learn on the same standardised features, from scratch (the trainer warm-starts its sweep):
    # the exported layer, with the standardisation folded in, gives its probabilities.
    x = unit(data.features)
    mean, scale = x[split.train].mean(0), x[split.train].std(0)
    fresh = LogisticRegression(C=trained.hyperparameters["C"], **LOGREG)
    fresh.fit((x[split.train] - mean) / scale, data.hard[split.train])
    expected = fresh.predict_proba((x - mean) / scale)
    assert np.abs(trained.probabilities(data.features) - expected).max() <= 1e-4
    # A line per C of the sweep, with the time left until the last.
    assert len(lines) == 13 and lines[0].startswith("logreg: C 0.01 (1/13)") and "s left" in lines[0]
    assert "not_converged_at_C" not in trained.hyperparameters


def test_the_exported_mlp_equals_its_torch_module() -> None:
    data = clusters()
    split = stratified_split(data.hard, data.classes, seed=0)
    for output in ("sigmoid_normalized", "softmax"):
        trained = train_mlp(data, split, TrainOptions(mlp_output=output, mlp_max_epochs=30))  # type: ignore[arg-type]
        with torch.no_grad():
            logits = trained.reference(torch.from_numpy(unit(data.features).astype(np.float32))).double()
        expected = torch.softmax(logits, 1) if output == "softmax" else torch.sigmoid(logits)
        expected = expected / expected.sum(1, keepdim=True)
        assert np.abs(trained.probabilities(data.features) - expected.numpy()).max() <= 1e-6, output
        assert trained.document["output"] == output and len(trained.document["layers"]) == 6


def test_the_prototype_head_is_nearest_centroid() -> None:
    data = clusters(per_class=6)
    split = stratified_split(data.hard, data.classes, seed=0)
    trained = train_prototype(data, split, TrainOptions())
    x = unit(data.features)
    centroids = np.stack(
        [unit(x[split.train][data.hard[split.train] == k].mean(0, keepdims=True))[0] for k in range(4)]
    )
    logits = trained.hyperparameters["temperature"] * x @ centroids.T
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    assert np.abs(trained.probabilities(data.features) - expected).max() <= 1e-5
    assert (trained.probabilities(data.features).argmax(1) == (x @ centroids.T).argmax(1)).all()


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 1,797 real handwritten digits (8×8, 17 grey levels) as PNG class folders, 64×64."""
    root = tmp_path_factory.mktemp("digits")
    data = sklearn_datasets.load_digits()
    for i, (image, label) in enumerate(zip(data.images, data.target, strict=True)):
        folder = root / str(label)
        folder.mkdir(exist_ok=True)
        pixels = (image * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((64, 64), Image.Resampling.NEAREST).save(folder / f"{i:04d}.png")
    return root


def test_digits_end_to_end_and_the_deployed_head_serves_the_same_predictions(
    digits: Path, tmp_path: Path
) -> None:
    from clip_local.stack import local_stack

    head, report = tmp_path / "head.json", tmp_path / "report"
    result = train(
        "--images", str(digits), "--model-dir", str(TINY_MODEL_DIR / "int8"), "--cache-dir", str(tmp_path / "cache"),
        "--head-type", "all", "--target-precision", "0.95", "--report", str(report), "--out", str(head),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout)
    doc = parse_weights(head.read_bytes())
    training = doc.provenance.training
    assert doc.classes == [str(d) for d in range(10)] and doc.head_type == training["head_type"]
    assert training["split"] == {"train": 1259, "validation": 269, "test": 269}
    assert training["test_metrics"]["top1_accuracy"] >= 0.8  # measured 0.93 (logreg) on the tiny model
    assert doc.ambiguity is not None and doc.ambiguity.fitted["target_precision"] == 0.95
    for name in ("prototype", "logreg", "mlp"):
        assert (report / f"{name}_confusion.png").stat().st_size > 1000
        assert (report / f"{name}_reliability.png").is_file() and (report / f"{name}_per_class.png").is_file()
    text = (report / "report.md").read_text()
    assert "McNemar" in text and "Ambiguity guard" in text and "Most confused" in text

    # A rerun embeds nothing new: every embedding comes from the cache.
    again = train(
        "--images", str(digits), "--cache-dir", str(tmp_path / "cache"), "--head-type", "prototype", "--out", str(tmp_path / "p.json"),
    )  # fmt: skip
    assert again.returncode == 0 and "embedded 0 image(s), 1797 from the cache" in again.stderr

    # The deployed head classifies test images through the upload path as the trainer predicted.
    with (report / "test_predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:12]
    with local_stack(weights=head, model_dir=TINY_MODEL_DIR / "int8", quiet=True) as stack:
        for row in rows:
            name = f"digits/{Path(row['source']).name}"
            assert stack.upload_file(name, Path(row["source"]).read_bytes())
            item = stack.result(picture_id_for_key(stack.key_prefix + name, stack.key_prefix))
            assert item is not None and item.status == "classified" and item.probabilities is not None
            expected = json.loads(row["probabilities"])
            # The trainer predicts from float32 features; the upload path scores the stored int8 embedding
            # (storage/embedding_codec.py): measured 1.1e-3 at most on these rows (float16 stored: 1e-5).
            assert max(abs(item.probabilities[k] - v) for k, v in expected.items()) <= 5e-3
            assert item.top_label == row["predicted"] and item.ambiguous is not None


def write_images(root: Path, counts: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / label / f"{i}.png")


def test_bad_input_is_a_clear_error_and_unreadable_images_are_skipped(tmp_path: Path) -> None:
    cache = (
        "--cache-dir",
        str(tmp_path / "cache"),
        "--head-type",
        "prototype",
        "--out",
        str(tmp_path / "h.json"),
    )
    (tmp_path / "empty").mkdir()
    assert "has no files in class sub-folders" in train("--images", str(tmp_path / "empty"), *cache).stderr
    write_images(tmp_path / "one", {"cats": 4})
    assert "at least 2 classes" in train("--images", str(tmp_path / "one"), *cache).stderr
    write_images(tmp_path / "small", {"cats": 4, "dogs": 2})
    assert "too few: dogs (2)" in train("--images", str(tmp_path / "small"), *cache).stderr

    write_images(tmp_path / "ok", {"cats": 4, "dogs": 4})
    (tmp_path / "ok" / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    result = train("--images", str(tmp_path / "ok"), *cache)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 1 unreadable file(s)" in result.stderr and "broken.jpg (image_corrupt)" in result.stderr

    labels = tmp_path / "labels.csv"
    labels.write_text(f"{tmp_path}/ok/cats/0.png,cats:0.7;dogs:0.2\n", encoding="utf-8")
    assert "sum to 1, got 0.9" in train("--labels", str(labels), *cache).stderr
    classes = tmp_path / "classes.txt"
    classes.write_text("cats\ndogs\n", encoding="utf-8")
    labels.write_text(f"{tmp_path}/ok/cats/0.png,birds\n", encoding="utf-8")
    assert (
        "labels not among the classes: birds"
        in train("--labels", str(labels), "--classes", str(classes), *cache).stderr
    )

    model_sha = json.loads((TINY_MODEL_DIR / "int8" / "manifest.json").read_text())["model_sha256"]
    other = tmp_path / "other.npz"
    np.savez(
        other,
        features=np.zeros((6, 512), np.float32),
        labels=np.array(["cats", "dogs"] * 3),
        model_sha256="0" * 64,
    )
    assert "features from another model" in train("--features", str(other), *cache).stderr
    narrow = tmp_path / "narrow.npz"
    np.savez(
        narrow,
        features=np.ones((6, 3), np.float32),
        labels=np.array(["cats", "dogs"] * 3),
        model_sha256=model_sha,
    )
    assert "features are 3-d but the model outputs 512" in train("--features", str(narrow), *cache).stderr


def test_a_zero_shot_head_competes_and_wise_ft_interpolates_it_with_logreg(tmp_path: Path) -> None:
    from clip_export.head_files import head_document

    model_sha = json.loads((TINY_MODEL_DIR / "int8" / "manifest.json").read_text())["model_sha256"]
    data = clusters(k=3, per_class=30)
    features = tmp_path / "features.npz"
    np.savez(
        features, features=data.features, labels=np.array(data.classes)[data.hard], model_sha256=model_sha
    )
    # A stand-in zero-shot head: noisy class directions × a CLIP-like logit scale.
    rng = np.random.default_rng(5)
    centres = np.stack([unit(data.features[data.hard == k].mean(0, keepdims=True))[0] for k in range(3)])
    noisy = unit(centres + 0.05 * rng.normal(size=centres.shape))
    zero_shot = tmp_path / "zs.json"
    zero_shot.write_text(
        json.dumps(
            head_document(
                data.classes,
                [(noisy * 100, np.zeros(3))],
                output="softmax",
                head_type="zero_shot",
                training={},
                exported_by="test",
            )
        )
    )
    out, report = tmp_path / "head.json", tmp_path / "report"
    result = train(
        "--features", str(features), "--head-type", "logreg", "--zero-shot-head", str(zero_shot),
        "--wise-alpha", "0.5", "--report", str(report), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    text = (report / "report.md").read_text()
    for name in ("zero_shot", "logreg", "wise"):
        assert f"| {name}" in text and (report / f"{name}_confusion.png").is_file()
    assert "| logreg | zero_shot |" in text and "| zero_shot | wise |" in text  # McNemar pairs
    doc = parse_weights(out.read_bytes())
    assert doc.head_type in ("zero_shot", "logreg") and doc.provenance.training["head_type"] in (
        "zero_shot",
        "logreg",
        "wise",
    )

    anchored = train(
        "--features", str(features), "--head-type", "logreg", "--zero-shot-head", str(zero_shot),
        "--init", "zero-shot", "--out", str(out),
    )  # fmt: skip
    assert anchored.returncode == 0, anchored.stderr[-2000:]
    assert parse_weights(out.read_bytes()).provenance.training["head_type"] in ("zero_shot", "logreg")
    bad = train(
        "--features", str(features), "--head-type", "logreg", "--init", "zero-shot", "--out", str(out)
    )
    assert bad.returncode != 0 and "--init zero-shot needs --zero-shot-head" in bad.stderr
    bad = train(
        "--features", str(features), "--head-type", "logreg", "--wise-alpha", "0.5", "--out", str(out)
    )
    assert bad.returncode != 0 and "--wise-alpha needs --zero-shot-head" in bad.stderr
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps(
            head_document(
                ["x", "y", "z"],
                [(noisy, np.zeros(3))],
                output="softmax",
                head_type="zero_shot",
                training={},
                exported_by="test",
            )
        )
    )
    bad = train(
        "--features",
        str(features),
        "--head-type",
        "logreg",
        "--zero-shot-head",
        str(other),
        "--out",
        str(out),
    )
    assert bad.returncode != 0 and "build it from the same classes" in bad.stderr


def test_folds_for_small_sets_predict_every_example_out_of_fold(digits: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    for label in ("0", "1", "7"):
        (small / label).mkdir(parents=True)
        for path in sorted((digits / label).iterdir())[:8]:
            (small / label / path.name).write_bytes(path.read_bytes())
    out, report = tmp_path / "head.json", tmp_path / "report"
    common = ("--images", str(small), "--cache-dir", str(tmp_path / "cache"), "--head-type", "logreg")
    result = train(
        *common, "--folds", "4", "--target-precision", "0.9", "--report", str(report), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 folds of [6, 6, 6, 6]" in result.stdout
    training = parse_weights(out.read_bytes()).provenance.training
    assert training["split"]["folds"] == 4 and training["split"]["fold_sizes"] == [6, 6, 6, 6]
    with (report / "test_predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 24 and {Path(r["source"]).name for r in rows} == {
        p.name for p in small.rglob("*.png")
    }
    refused = train(*common, "--folds", "9", "--out", str(out))
    assert refused.returncode != 0 and "--folds 9 needs at least 9 examples per class" in refused.stderr


def test_anchored_logreg_is_scikit_learns_problem_at_a_zero_anchor_and_the_zero_shot_head_at_small_c() -> (
    None
):
    from sklearn.linear_model import LogisticRegression

    from clip_export.head_training import C_GRID, train_logreg_anchored

    data = clusters(k=3, per_class=30)
    split = stratified_split(data.hard, data.classes, seed=0)
    zero = (np.zeros((3, 512)), np.zeros(3))
    anchored = train_logreg_anchored(data, split, TrainOptions(), zero)
    fresh = LogisticRegression(C=anchored.hyperparameters["C"], **LOGREG).fit(
        unit(data.features[split.train]), data.hard[split.train]
    )
    assert (
        np.abs(anchored.probabilities(data.features) - fresh.predict_proba(unit(data.features))).max() <= 1e-4
    )
    # Anchored at a head, a tiny C stays next to it: the zero-shot head is where training starts.
    anchor = (np.random.default_rng(2).normal(size=(3, 512)) * 3, np.zeros(3))
    close = train_logreg_anchored(data, split, TrainOptions(), anchor, c_grid=(C_GRID[0] * 1e-4,))
    assert np.abs(parse_weights(json.dumps(close.document)).arrays()[0][0] - anchor[0]).max() < 1e-3

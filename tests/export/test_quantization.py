"""``--quantization auto``: every recipe measured against fp32, the fastest passing int8 one deployed, fp32
when none passes, and the figures in the manifest (needs the 'export' extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clip_classifier.model.cpu_features import detect_cpu_features
from clip_classifier.model.embedder import Embedder
from clip_classifier.model.manifest import file_sha256, load_manifest
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT
from tests.helpers import run_export

pytest.importorskip("torch")
pytestmark = pytest.mark.export

from clip_export.quantization import BY_NAME, RECIPES, SPEED_TIE  # noqa: E402 - needs onnx (the extra)

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"


def test_auto_deploys_the_fastest_passing_int8_recipe_and_records_why(tmp_path: Path) -> None:
    result = run_export("tiny", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = load_manifest(tmp_path / "int8" / "manifest.json")
    report = manifest.quantization_report
    assert report is not None and set(report.recipes) == {recipe.name for recipe in RECIPES}
    assert report.calibration_inputs == len([p for p in FIXTURES.iterdir() if p.is_file()])
    assert report.cpu == detect_cpu_features() and report.min_cosine == 0.995
    # On random-init tiny weights the old default passes, as do others; the fastest passing one is kept.
    assert report.recipes["dynamic-per-tensor"].passed
    passing = {name: f for name, f in report.recipes.items() if f.passed and name != "fp32"}
    assert report.chosen in passing
    assert passing[report.chosen].embed_ms <= min(f.embed_ms for f in passing.values()) * (1 + SPEED_TIE)
    assert manifest.quantization_recipe == report.chosen
    assert manifest.quantization == BY_NAME[report.chosen].quantization
    for name, figures in report.recipes.items():
        assert figures.passed == (figures.min_cosine >= 0.995), name
    # The deployed file is the measured one, and it loads (sha256 verified) with no CPU warning here.
    assert manifest.model_sha256 == file_sha256(tmp_path / "int8" / "model.onnx")
    assert Embedder(tmp_path / "int8" / "model.onnx").cpu_warning is None
    assert "| recipe | min cosine |" in result.stdout and f"| {report.chosen} **(chosen)** |" in result.stdout


def test_when_no_recipe_meets_the_floor_fp32_is_deployed_with_a_warning(tmp_path: Path) -> None:
    result = run_export("tiny", tmp_path, "--min-cosine", "0.999999")
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = load_manifest(tmp_path / "int8" / "manifest.json")
    assert manifest.quantization == "none" and manifest.quantization_recipe == "fp32"
    assert manifest.quantization_report is not None
    assert not any(f.passed for n, f in manifest.quantization_report.recipes.items() if n != "fp32")
    assert "warning: no int8 recipe kept min cosine >= 0.999999" in result.stderr


def test_a_head_adds_its_agreement_and_a_head_for_other_features_is_refused(tmp_path: Path) -> None:
    result = run_export(
        "tiny", tmp_path / "ok", "--head", str(EXAMPLE_WEIGHTS), "--quantization", "dynamic-per-tensor"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = load_manifest(tmp_path / "ok" / "int8" / "manifest.json").quantization_report
    assert report is not None and set(report.recipes) == {"dynamic-per-tensor", "fp32"}
    figures = report.recipes["dynamic-per-tensor"]
    assert figures.top1_agreement is not None and 0 <= figures.top1_agreement <= 1
    assert figures.max_probability_change is not None and report.head_version
    assert report.chosen == "dynamic-per-tensor"  # explicit: deployed as asked, with its figures

    refused = run_export("tiny-l14", tmp_path / "l14", "--head", str(EXAMPLE_WEIGHTS))
    assert refused.returncode != 0
    assert "expects 512-d features but this model outputs 768" in refused.stderr


def test_calibration_folders_empty_or_with_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_export("tiny", tmp_path / "a", "--calibration-images", str(empty))
    assert result.returncode != 0 and "holds no readable image" in result.stderr

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (mixed / "notes.txt").write_text("not an image")
    (mixed / "photo.webp").write_bytes((FIXTURES / "photo.webp").read_bytes())
    result = run_export(
        "tiny", tmp_path / "b", "--calibration-images", str(mixed), "--quantization", "dynamic-quint8"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "skipped 2 unreadable file(s): broken.jpg (image_corrupt), notes.txt (image_unsupported)"
        in result.stdout
    )
    report = load_manifest(tmp_path / "b" / "int8" / "manifest.json").quantization_report
    assert report is not None and report.calibration_inputs == 1

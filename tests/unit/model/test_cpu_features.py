"""CPU feature detection and the embedder's warning when its CPU takes another int8 path than the export's."""

from __future__ import annotations

import shutil
from pathlib import Path

from clip_classifier.model.cpu_features import CpuFeatures, detect_cpu_features
from clip_classifier.model.embedder import Embedder, int8_path_warning
from clip_classifier.model.manifest import QuantizationReport, RecipeFigures, load_manifest
from clip_local.paths import TINY_MODEL_DIR

AVX2 = CpuFeatures(avx2=True, avx512=False, vnni=False, machine="x86_64")
VNNI = CpuFeatures(avx2=True, avx512=True, vnni=True, machine="x86_64")
GRAVITON = CpuFeatures(avx2=False, avx512=False, vnni=False, machine="aarch64", dotprod=True, i8mm=True)


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n")
    return path


def test_arm64_features_map_to_its_own_int8_kernels(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo-arm"
    # /proc/cpuinfo on a Graviton3: a "Features" line, no "flags".
    path.write_text("processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd aes asimddp sve i8mm bf16\n")
    assert detect_cpu_features(path, machine="aarch64") == GRAVITON
    assert GRAVITON.architecture == "arm64" and GRAVITON.int8_path == "arm64-i8mm"
    path.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert detect_cpu_features(path, machine="aarch64").int8_path == "arm64-dotprod"  # type: ignore[union-attr]
    assert CpuFeatures(avx2=False, avx512=False, vnni=False).architecture is None  # older manifests


def test_a_model_measured_on_x86_64_warns_on_arm64_by_name() -> None:
    manifest = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json")
    figures = RecipeFigures(min_cosine=0.999, mean_cosine=0.9995, embed_ms=1.0, passed=True)
    report = QuantizationReport(
        chosen="dynamic-per-tensor",
        min_cosine=0.995,
        calibration_inputs=16,
        cpu=VNNI,
        onnxruntime="test",
        recipes={"dynamic-per-tensor": figures},
    )
    measured = manifest.model_copy(update={"quantization_report": report})
    warning = int8_path_warning(measured, GRAVITON)
    assert warning is not None
    assert "measured on x86_64 (vnni), this function runs on arm64 (arm64-i8mm)" in warning
    assert "export the model on arm64" in warning
    arm_report = report.model_copy(update={"cpu": GRAVITON})
    assert (
        int8_path_warning(manifest.model_copy(update={"quantization_report": arm_report}), GRAVITON) is None
    )


def test_flags_map_to_the_int8_kernel_family(tmp_path: Path) -> None:
    assert detect_cpu_features(cpuinfo(tmp_path, "avx avx2 fma"), machine="x86_64") == AVX2
    assert detect_cpu_features(cpuinfo(tmp_path, "avx2 avx512f avx512bw")).int8_path == "avx512"  # type: ignore[union-attr]
    assert (
        detect_cpu_features(cpuinfo(tmp_path, "avx2 avx512f avx512bw avx512_vnni"), machine="x86_64") == VNNI
    )
    assert detect_cpu_features(cpuinfo(tmp_path, "avx2 avx_vnni")).int8_path == "vnni"  # type: ignore[union-attr]
    assert detect_cpu_features(cpuinfo(tmp_path, "sse4_2")).int8_path == "baseline"  # type: ignore[union-attr]
    assert detect_cpu_features(tmp_path / "missing") is None


def test_the_embedder_warns_when_its_cpu_differs_from_the_measured_one(tmp_path: Path) -> None:
    source = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json")
    here = detect_cpu_features()
    assert here is not None
    other = VNNI if here.int8_path != "vnni" else AVX2
    figures = RecipeFigures(min_cosine=0.999, mean_cosine=0.9995, embed_ms=1.0, passed=True)
    report = QuantizationReport(
        chosen="dynamic-per-tensor",
        min_cosine=0.995,
        calibration_inputs=16,
        cpu=other,
        onnxruntime="test",
        recipes={"dynamic-per-tensor": figures},
    )
    manifest = source.model_copy(update={"quantization_report": report})
    folder = tmp_path / "int8"
    folder.mkdir()
    shutil.copyfile(TINY_MODEL_DIR / "int8" / "model.onnx", folder / "model.onnx")
    (folder / "manifest.json").write_text(manifest.model_dump_json())
    warning = Embedder(folder / "model.onnx").cpu_warning
    assert warning is not None and f"measured on a {other.int8_path} CPU" in warning
    assert here.int8_path in warning
    # Same family, fp32, or no report: nothing to warn about.
    same = report.model_copy(update={"cpu": here})
    assert int8_path_warning(manifest.model_copy(update={"quantization_report": same}), here) is None
    assert int8_path_warning(manifest.model_copy(update={"quantization": "none"}), other) is None
    assert int8_path_warning(source, other) is None

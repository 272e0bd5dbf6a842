"""The ONNX embedder (real tiny CLIP exports) against golden PyTorch embeddings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from clip_classifier.exceptions import ModelFormatError, ModelIntegrityError, ModelNotFoundError
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.embedder import Embedder, available_cpus
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
GOLDEN = json.loads((TINY_MODEL_DIR / "golden_embeddings.json").read_text())
# Our preprocessing + onnxruntime vs HF processor + torch fp32 (cosine similarity).
FP32_MIN_COSINE = 0.99999
INT8_MIN_COSINE = 0.999


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module", params=["fp32", "int8"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return Embedder(TINY_MODEL_DIR / request.param / "model.onnx")


def test_golden_data_belongs_to_the_committed_files() -> None:
    import hashlib

    for name, entry in GOLDEN["images"].items():
        assert hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() == entry["sha256"], name
    assert GOLDEN["int8_model_sha256"] == Embedder(TINY_MODEL_DIR / "int8" / "model.onnx").version


def test_embeddings_match_pytorch_on_every_fixture(embedder: Embedder) -> None:
    pre = Preprocessor(embedder.manifest.transform, mode="exact")
    floor = FP32_MIN_COSINE if embedder.manifest.quantization == "none" else INT8_MIN_COSINE
    worst = 1.0
    for name, entry in GOLDEN["images"].items():
        got = embedder.embed(pre((FIXTURES / name).read_bytes()).pixels)[0]
        assert got.shape == (512,)
        worst = min(worst, cosine(got, np.asarray(entry["embedding"])))
    assert worst >= floor, f"{embedder.manifest.quantization}: worst cosine {worst}"


def test_batches_equal_single_images(embedder: Embedder) -> None:
    pre = Preprocessor(embedder.manifest.transform)
    pixels = np.concatenate([pre((FIXTURES / n).read_bytes()).pixels for n in ("bitmap.bmp", "gray_l.png")])
    batch = embedder.embed(pixels)
    alone = embedder.embed(pixels[1:])[0]
    if embedder.manifest.quantization == "none":
        assert np.allclose(batch[1], alone, atol=1e-5)
    else:  # dynamic int8: the activation scale is per call, so batch-mates shift the result slightly
        assert cosine(batch[1], alone) >= 0.999
    assert np.array_equal(embedder.embed(pixels[1:])[0], alone)  # and the same call is reproducible


def test_threads_follow_the_cpus_this_process_may_use() -> None:
    assert Embedder(TINY_MODEL_DIR / "int8" / "model.onnx").threads == available_cpus() >= 1
    assert Embedder(TINY_MODEL_DIR / "int8" / "model.onnx", threads=1).threads == 1


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    shutil.copytree(TINY_MODEL_DIR / "int8", tmp_path / "m")
    model = tmp_path / "m" / "model.onnx"
    raw = bytearray(model.read_bytes())
    raw[-100] ^= 0xFF
    model.write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="has sha256 [0-9a-f]{64} but its manifest declares"):
        Embedder(model)


def test_missing_model_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Embedder(tmp_path / "model.onnx")
    shutil.copy(TINY_MODEL_DIR / "int8" / "model.onnx", tmp_path / "model.onnx")
    with pytest.raises(ModelNotFoundError, match="manifest"):
        Embedder(tmp_path / "model.onnx")


def test_manifest_that_names_other_tensors_is_refused(tmp_path: Path) -> None:
    shutil.copytree(TINY_MODEL_DIR / "int8", tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["output_name"] = "text_embeds"
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="expects 'pixel_values' → 'text_embeds'"):
        Embedder(tmp_path / "m" / "model.onnx")


def test_not_an_onnx_file_is_refused(tmp_path: Path) -> None:
    shutil.copytree(TINY_MODEL_DIR / "int8", tmp_path / "m")
    model = tmp_path / "m" / "model.onnx"
    model.write_bytes(b"not a model")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    import hashlib

    manifest["model_sha256"] = hashlib.sha256(b"not a model").hexdigest()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="onnxruntime cannot load"):
        Embedder(model)

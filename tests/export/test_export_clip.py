"""weights/export_clip_onnx.py against PyTorch (needs the 'export' extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clip_classifier.embedder import Embedder
from clip_classifier.exceptions import ConfigurationError
from clip_classifier.manifest import load_manifest
from clip_classifier.preprocess import Preprocessor
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR

pytest.importorskip("torch")
pytestmark = pytest.mark.export

SCRIPT = REPO_ROOT / "weights" / "export_clip_onnx.py"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"


def export(config: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--random-init",
            "--config",
            config,
            "--seed",
            "0",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize(("config", "dim"), [("tiny", 512), ("tiny-b16", 512), ("tiny-l14", 768)])
def test_export_writes_verified_fp32_and_int8_models(tmp_path: Path, config: str, dim: int) -> None:
    result = export(config, tmp_path)
    assert "fp32 min cosine" in result.stdout
    for variant, quant in (("fp32", "none"), ("int8", "int8-dynamic")):
        manifest = load_manifest(tmp_path / variant / "manifest.json")
        assert manifest.quantization == quant and manifest.output_dim == dim
        assert manifest.parity["fp32_vs_torch_min_cosine"] >= 0.99999
        assert manifest.parity["int8_vs_torch_min_cosine"] >= 0.99
        assert manifest.transform.shortest_edge == 224 and manifest.transform.resample == "bicubic"
        embedder = Embedder(tmp_path / variant / "model.onnx")  # names and dim come from the files
        pixels = Preprocessor(manifest.transform)((FIXTURES / "photo.webp").read_bytes()).pixels
        assert embedder.embed(pixels).shape == (1, dim)
    assert (tmp_path / "int8" / "model.onnx").stat().st_size < (
        tmp_path / "fp32" / "model.onnx"
    ).stat().st_size


def test_committed_tiny_model_is_what_the_script_makes(tmp_path: Path) -> None:
    export("tiny", tmp_path, "--fixtures", str(FIXTURES))
    fresh = json.loads((tmp_path / "golden_embeddings.json").read_text())["images"]
    committed = json.loads((TINY_MODEL_DIR / "golden_embeddings.json").read_text())["images"]
    assert fresh.keys() == committed.keys()
    for name in fresh:
        a, b = np.asarray(fresh[name]["embedding"]), np.asarray(committed[name]["embedding"])
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.99999, name


def test_an_embedder_that_does_not_fit_the_head_is_refused(tmp_path: Path) -> None:
    """A 768-d L/14-shaped model with the 512-input head: a clear configuration error, not a guess."""
    from clip_classifier.head import Head
    from clip_classifier.preprocess import ImageLimits
    from clip_classifier.results_store import ResultsStore
    from clip_classifier.s3_events import ObjectEvent
    from clip_classifier.upload_classifier import UploadClassifier
    from clip_classifier.weights_cache import WeightsCache
    from clip_local.paths import EXAMPLE_WEIGHTS

    export("tiny-l14", tmp_path)
    embedder = Embedder(tmp_path / "int8" / "model.onnx")
    weights = WeightsCache(str(EXAMPLE_WEIGHTS))
    assert isinstance(weights.get(), Head)
    classifier = UploadClassifier(
        s3=object(),  # type: ignore[arg-type]
        store=ResultsStore("unused"),
        weights=weights,
        embedder=embedder,
        preprocessor=Preprocessor(embedder.manifest.transform, ImageLimits()),
    )
    event = ObjectEvent(event_name="ObjectCreated:Put", bucket="bucket", key="k.jpg", sequencer="01")
    with pytest.raises(ConfigurationError, match="the embedder outputs 768 values but the head expects 512"):
        classifier.process(event)

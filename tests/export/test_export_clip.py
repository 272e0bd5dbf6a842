"""weights/export_clip_onnx.py against PyTorch (needs the 'export' extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clip_classifier.exceptions import WeightsMismatchError
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.embedder import Embedder
from clip_classifier.model.manifest import load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from tests.helpers import run_export

pytest.importorskip("torch")
pytestmark = pytest.mark.export

SCRIPT = REPO_ROOT / "weights" / "export_clip_onnx.py"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"


def export(config: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = run_export(config, out, *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.parametrize(("config", "dim"), [("tiny", 512), ("tiny-b16", 512), ("tiny-l14", 768)])
def test_export_writes_verified_fp32_and_int8_models(tmp_path: Path, config: str, dim: int) -> None:
    result = export(config, tmp_path)
    assert "fp32 min cosine" in result.stdout
    for variant in ("fp32", "int8"):
        manifest = load_manifest(tmp_path / variant / "manifest.json")
        # int8/ holds the recipe --quantization auto chose (tests/export/test_quantization.py).
        assert (manifest.quantization == "none") == (manifest.quantization_recipe == "fp32")
        assert manifest.output_dim == dim
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
    """A 768-d L/14-shaped model with the 512-input head: a clear error naming both, not a guess."""
    from clip_classifier.head.fit import ServedEmbedder
    from clip_classifier.storage.weights_object import weights_cache_for
    from clip_local.paths import EXAMPLE_WEIGHTS

    export("tiny-l14", tmp_path)
    embedder = Embedder(tmp_path / "int8" / "model.onnx")
    served = ServedEmbedder(output_dim=embedder.output_dim, model_sha256=embedder.version)
    weights = weights_cache_for(str(EXAMPLE_WEIGHTS), s3=None, cache_dir=tmp_path / "cache", served=served)
    with pytest.raises(
        WeightsMismatchError, match="expects 512 features but the embedder this function serves"
    ):
        weights.get()


def test_a_saved_hugging_face_checkpoint_exports_with_its_own_processor_config(tmp_path: Path) -> None:
    """The real-use path (``--model-id``, ``from_pretrained``) on a local checkpoint laid out like the hub's
    ``openai/clip-vit-*`` repos: a full CLIPModel plus a processor config with non-default parameters.

    The manifest must carry that config, and our exact preprocessing + the ONNX model must reproduce
    ``CLIPModel.get_image_features`` — the features a browser computes with the same checkpoint."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from clip_classifier.image.limits import ImageLimits
    from clip_classifier.image.preprocess import open_image, to_rgb

    checkpoint = tmp_path / "checkpoint"
    torch.manual_seed(1)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {**vision, "vocab_size": 64, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1}
    config = CLIPConfig(
        vision_config={**vision, "image_size": 64, "patch_size": 16}, text_config=text, projection_dim=512
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(checkpoint)
    processor = CLIPImageProcessor(
        size={"shortest_edge": 72},
        crop_size={"height": 64, "width": 64},
        resample=2,  # bilinear
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.25, 0.3],
    )
    processor.save_pretrained(checkpoint)

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model-id", str(checkpoint), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = load_manifest(out / "fp32" / "manifest.json")
    assert manifest.model_id == str(checkpoint) and manifest.revision == "local"
    t = manifest.transform
    assert (t.shortest_edge, t.crop_height, t.crop_width, t.resample) == (72, 64, 64, "bilinear")
    assert t.image_mean == pytest.approx([0.5, 0.4, 0.3]) and t.image_std == pytest.approx([0.2, 0.25, 0.3])

    embedder = Embedder(out / "fp32" / "model.onnx")
    exact = Preprocessor(t, mode="exact")
    for path in sorted(FIXTURES.iterdir()):
        data = path.read_bytes()
        reference = processor(images=to_rgb(open_image(data, ImageLimits())), return_tensors="pt")
        ours = exact(data).pixels
        np.testing.assert_allclose(ours, reference["pixel_values"].numpy(), atol=1e-6, err_msg=path.name)
        with torch.inference_mode():
            features = model.get_image_features(pixel_values=reference["pixel_values"])
        # transformers 5 returns an output object whose pooler_output is the projected feature; 4.x a tensor.
        expected = np.asarray(getattr(features, "pooler_output", features)).reshape(-1)
        got = embedder.embed(ours)[0]
        cosine = float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected))
        assert cosine >= 0.99999, (path.name, cosine)


def test_an_unreachable_hub_is_one_clear_sentence(tmp_path: Path) -> None:
    """``make model`` offline: the export stops with one line saying what to do, not a traceback."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--model-id", "openai/clip-vit-base-patch32", "--out", str(tmp_path)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cannot load openai/clip-vit-base-patch32@main from the Hugging Face hub"), last
    assert "Traceback" not in result.stderr and not any(tmp_path.glob("*/model.onnx"))


def _export_script() -> Any:
    """weights/export_clip_onnx.py as a module (a script, not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("export_clip_onnx", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_patch_embedding_as_a_matmul_is_the_same_product() -> None:
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    script = _export_script()
    for config in ("tiny", "tiny-l14"):
        torch.manual_seed(0)
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**script.CONFIGS[config])).eval()
        wrapper = script.ImageEmbeds(model)
        lean = script.for_onnx(wrapper, "matmul")
        assert isinstance(lean.model.vision_model.embeddings.patch_embedding, script.PatchMatMul)
        # A copy: the reference parity is measured against keeps its Conv2d.
        assert isinstance(model.vision_model.embeddings.patch_embedding, torch.nn.Conv2d)
        assert script.for_onnx(wrapper, "conv") is wrapper
        pixels = torch.randn(3, 3, 224, 224)
        with torch.no_grad():
            assert float((lean(pixels) - wrapper(pixels)).abs().max()) <= 1e-5, config
    padded = torch.nn.Conv2d(3, 8, kernel_size=4, stride=4, padding=1, bias=False)
    with pytest.raises(SystemExit, match="not a plain patch convolution"):
        script.PatchMatMul(padded)


def test_the_deployed_graph_has_no_conv_and_the_previous_export_is_still_there(tmp_path: Path) -> None:
    import onnx

    export("tiny", tmp_path / "matmul")
    export("tiny", tmp_path / "conv", "--patch-embedding", "conv")
    for variant in ("fp32", "int8"):
        lean = {n.op_type for n in onnx.load(str(tmp_path / "matmul" / variant / "model.onnx")).graph.node}
        conv = {n.op_type for n in onnx.load(str(tmp_path / "conv" / variant / "model.onnx")).graph.node}
        assert not lean & {"Conv", "ConvInteger"}, variant
        assert conv & {"Conv", "ConvInteger"}, variant
    a = Embedder(tmp_path / "matmul" / "fp32" / "model.onnx")
    b = Embedder(tmp_path / "conv" / "fp32" / "model.onnx")
    pixels = Preprocessor(a.manifest.transform)((FIXTURES / "photo.webp").read_bytes()).pixels
    x, y = a.embed(pixels)[0], b.embed(pixels)[0]
    assert float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) >= 0.99999

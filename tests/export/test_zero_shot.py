"""The text tower export and zero-shot heads against Hugging Face (needs the 'export' extra).

A tiny CLIPModel saved as a hub-style checkpoint (model, tokenizer, image processor) is exported with
``--text``; the zero-shot head built from it must reproduce transformers' own
``zero-shot-image-classification`` pipeline on the fixture images, from the project's image embeddings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor, open_image, to_rgb
from clip_classifier.model.embedder import Embedder
from clip_classifier.model.manifest import file_sha256, load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.export

from clip_export.text_model import load_text_manifest  # noqa: E402
from clip_export.text_tokens import build_offline_tokenizer  # noqa: E402

EXPORT = REPO_ROOT / "weights" / "export_clip_onnx.py"
ZERO_SHOT = REPO_ROOT / "weights" / "zero_shot_head.py"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
CLASSES = ["dog", "cat", "group photo of friends", "phone screenshot", "landscape"]


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=False, timeout=900
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, export folder): a tiny CLIPModel with its own tokenizer, exported with --text."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    root = tmp_path_factory.mktemp("zero-shot")
    checkpoint, out = root / "checkpoint", root / "out"
    build_offline_tokenizer(checkpoint)
    from clip_export.text_tokens import TextTokens

    tokens = TextTokens(checkpoint / "tokenizer.json")
    torch.manual_seed(3)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {
        **vision,
        "vocab_size": tokens.eos_id + 1,
        "max_position_embeddings": 77,
        "bos_token_id": tokens.bos_id,
        "eos_token_id": tokens.eos_id,
        "pad_token_id": tokens.pad_id,
    }
    config = CLIPConfig(
        vision_config={**vision, "image_size": 224, "patch_size": 32}, text_config=text, projection_dim=64
    )
    CLIPModel(config).eval().save_pretrained(checkpoint)
    CLIPImageProcessor().save_pretrained(checkpoint)
    result = run(
        EXPORT,
        "--model-id",
        str(checkpoint),
        "--out",
        str(out),
        "--text",
        "--quantization",
        "dynamic-per-tensor",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "text tower: text_embeds[64]" in result.stdout
    return checkpoint, out


def test_the_text_tower_is_exported_beside_the_vision_tower_and_paired_with_it(
    exported: tuple[Path, Path],
) -> None:
    checkpoint, out = exported
    from transformers import CLIPModel

    logit_scale = float(CLIPModel.from_pretrained(checkpoint).logit_scale.detach().exp())
    vision = [file_sha256(out / variant / "model.onnx") for variant in ("fp32", "int8")]
    for variant, quantization in (("fp32", "none"), ("int8", "int8-dynamic")):
        folder = out / "text" / variant
        manifest = load_text_manifest(folder)
        assert manifest.quantization == quantization and manifest.context_length == 77
        assert manifest.model_sha256 == file_sha256(folder / "model.onnx")
        assert sorted(manifest.vision_model_sha256) == sorted(vision)
        assert manifest.logit_scale == pytest.approx(logit_scale, rel=1e-6)
        assert (folder / "tokenizer.json").is_file() and manifest.model_id == str(checkpoint)
        assert manifest.parity["text_fp32_vs_torch_min_cosine"] >= 0.99999
        assert manifest.parity["text_int8_vs_torch_min_cosine"] > 0  # reported
    assert not (out / "text" / "tokenizer").exists()


def test_zero_shot_probabilities_equal_the_hugging_face_pipeline(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import pipeline

    try:
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:  # transformers 4.x
        from transformers import CLIPImageProcessor as Processor  # type: ignore[assignment]

    checkpoint, out = exported
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    head_path = tmp_path / "head.json"
    result = run(
        ZERO_SHOT,
        "--classes",
        str(classes),
        "--templates",
        "single",
        "--model-dir",
        str(out / "fp32"),
        "--out",
        str(head_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    doc = parse_weights(head_path.read_bytes())
    assert doc.head_type == "zero_shot" and doc.classes == CLASSES and doc.output == "softmax"
    head = Head(doc)

    fixtures = sorted(p for p in FIXTURES.iterdir() if p.is_file())
    embedder = Embedder(out / "fp32" / "model.onnx")
    preprocess = Preprocessor(embedder.manifest.transform, mode="exact")
    ours = np.concatenate([embedder.embed(preprocess(p.read_bytes()).pixels) for p in fixtures])
    _, probabilities = head.forward(ours)

    classify = pipeline(
        "zero-shot-image-classification",
        model=str(checkpoint),
        image_processor=Processor.from_pretrained(str(checkpoint)),
    )
    images = [to_rgb(open_image(p.read_bytes(), ImageLimits())) for p in fixtures]
    answers = classify(images, candidate_labels=CLASSES, hypothesis_template="a photo of a {}.")
    reference = np.asarray(
        [[{a["label"]: a["score"] for a in answer}[c] for c in CLASSES] for answer in answers]
    )
    difference = float(np.abs(probabilities - reference).max())
    print(
        f"zero-shot vs pipeline on {len(fixtures)} images x {len(CLASSES)} classes: max |dp| {difference:.2e}"
    )
    assert difference <= 1e-5


def test_bad_inputs_are_clear_errors(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = exported
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\ncat\n", encoding="utf-8")

    def zero_shot(*args: str) -> str:
        result = run(ZERO_SHOT, "--out", str(tmp_path / "h.json"), *args)
        assert result.returncode != 0
        return result.stderr

    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    assert "no class labels" in zero_shot("--classes", str(empty), "--model-dir", str(out / "int8"))
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("dog\ncat\ndog\n", encoding="utf-8")
    assert 'classes[2] "dog" repeats classes[0] "dog"' in zero_shot(
        "--classes", str(repeated), "--model-dir", str(out / "int8")
    )
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("dog: a dog\ncat: a cat\nbird: a bird\n", encoding="utf-8")
    assert "labels not in the classes: bird" in zero_shot(
        "--classes", str(classes), "--prompts", str(prompts), "--model-dir", str(out / "int8")
    )
    # The committed tiny vision model was not exported with this text tower: different embedding spaces.
    unpaired = zero_shot(
        "--classes",
        str(classes),
        "--model-dir",
        str(TINY_MODEL_DIR / "int8"),
        "--text-model-dir",
        str(out / "text" / "fp32"),
    )
    assert "was not exported with the vision model" in unpaired
    assert "no text tower" in zero_shot(
        "--classes", str(classes), "--model-dir", str(TINY_MODEL_DIR / "int8")
    )
    assert (
        load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").model_sha256
        not in load_text_manifest(out / "text" / "fp32").vision_model_sha256
    )


def test_make_models_first_head_is_the_zero_shot_head_the_local_stack_serves(
    exported: tuple[Path, Path],
) -> None:
    """`make model`'s last step, run as the Makefile writes it for this export, builds the zero-shot head of
    the 12 default classes beside the model; the local stack registers and serves it, and says where it came
    from (never "its labels mean nothing")."""
    import json

    from clip_local.paths import initial_head
    from clip_local.stack import local_stack

    _, out = exported
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "model", f"MODEL_OUT={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (command,) = [line for line in recipe.replace("\\\n", " ").splitlines() if "zero_shot_head.py" in line]
    built = subprocess.run(["bash", "-c", command.replace(".venv/bin/python", sys.executable)], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=False, timeout=900)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    head_file = out / "zero_shot_head.json"
    assert initial_head(out / "int8") == head_file
    doc = parse_weights(head_file.read_bytes())
    assert doc.head_type == "zero_shot" and len(doc.classes) == 12
    with local_stack(model_dir=out / "int8", quiet=True) as stack:
        active = stack.registry.active()
        assert active is not None and active.version == doc.content_sha256
        info = stack.score.function().service.model_info()
        assert info.head.meaningful and info.head.source == "zero-shot from 36 class prompts"
        assert json.loads(info.model_dump_json(by_alias=True))["head"]["registeredBy"] == "local stack"

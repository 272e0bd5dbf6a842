"""Export a CLIP vision tower with its projection (``image_embeds``) to ONNX, fp32 and int8.

Needs the ``export`` extra (torch, transformers, onnx). Writes two variants, each a folder with
``model.onnx`` and ``manifest.json`` (transform parameters from the model's own image processor config,
input/output names, dimension, quantization, the model file's sha256, and the parity measured here)::

    OUT/fp32/{model.onnx, manifest.json}
    OUT/int8/{model.onnx, manifest.json}     # the deployed variant: the recipe --quantization chose
    OUT/golden_embeddings.json               # with --fixtures: torch fp32 embeddings of those images

``--quantization auto`` (the default) quantizes with every recipe in ``clip_export.quantization``, measures
each against fp32 on the calibration images (``--calibration-images``, default the test fixtures: use your
own photos) and, with ``--head``, the head's top-1 agreement and largest probability change; it keeps the
fastest int8 recipe with min cosine >= ``--min-cosine`` (0.995) and top-1 agreement >= ``--min-top1``
(99 %), else fp32 with a warning. The table is printed; the figures, the choice and the CPU features it
was measured on go into ``int8/manifest.json`` (``quantization_report``).

Real use (needs the Hugging Face hub)::

    python weights/export_clip_onnx.py --model-id openai/clip-vit-base-patch32 --out weights/models/vit-b-32

Offline, the same architecture with random weights::

    python weights/export_clip_onnx.py --random-init --config vit-b-32 --seed 0 --out bench/.cache/vit-b-32
    python weights/export_clip_onnx.py --random-init --config tiny --seed 0 --out weights/models/tiny \\
        --fixtures tests/fixtures/images

At export the script checks parity against PyTorch and fails if fp32 ONNX cosine < 0.99999 or the
deployed variant's cosine < 0.99 (the figure is always printed).

The patch embedding is exported as a MatMul over the image cut into patches (``--patch-embedding matmul``,
the default), not as the checkpoint's Conv2d: the kernel equals the stride, so it is the same product, but
onnxruntime quantizes a MatMul to its fast int8 GEMM while a quantized Conv runs ``ConvInteger``, which took
a fifth of the int8 ViT-B/32's time here (9.4 of 43 ms). Parity is checked against the unmodified PyTorch
model; ``--patch-embedding conv`` exports the Conv as before (``bench/bench_pipeline.py`` builds both and
times them paired). Attention fusion (an eager-attention export through onnxruntime's transformer
optimizer) was measured and not kept: 12 fused ``Attention`` nodes, quantized to ``QAttention``, ran 10 %
slower than the plain graph on ViT-B/32's 50 tokens.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization.shape_inference import quant_pre_process
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModelWithProjection

from clip_classifier.exceptions import ImageError
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor, open_image, to_rgb
from clip_classifier.image.transform import ImageTransform
from clip_classifier.model.manifest import ModelManifest, QuantizationReport
from clip_export.prompt_templates import OPENAI_7
from clip_export.quantization import BY_NAME, RECIPES, Comparison, as_feeds, compare_recipes, quantize, render
from clip_export.text_model import TEXT_INPUT, TEXT_OUTPUT, TextModelManifest
from clip_export.text_tokens import CONTEXT_LENGTH, TextTokens, build_offline_tokenizer

try:  # transformers >= 5 names the PIL backend explicitly
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # pragma: no cover - transformers 4.x: the default processor is the PIL one
    from transformers import CLIPImageProcessor  # type: ignore[assignment]

# Architectures of the public OpenAI checkpoints, for offline random-init exports.
CONFIGS: dict[str, dict[str, Any]] = {
    "vit-b-32": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    ),
    "vit-b-16": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=16,
        projection_dim=512,
    ),
    "vit-l-14": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
    ),
    # For tests: the real CLIP vision code path and 224px input, tiny widths, 512-d output like B/32.
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=32,
        projection_dim=512,
    ),
    # Tiny stand-ins with the B/16 and L/14 shapes (patch size; L/14's 768-d output) for the tests.
    "tiny-b16": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=16,
        projection_dim=512,
    ),
    "tiny-l14": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=224,
        patch_size=14,
        projection_dim=768,
    ),
}
# CLIP's text towers (the public checkpoints' shapes); tiny ones for tests. The vocabulary size grows to
# fit the tokenizer where it is larger (never for the real ones).
_TEXT_TINY = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=1024
)
_TEXT_B = dict(
    hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8, vocab_size=49408
)
TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    "vit-b-32": _TEXT_B,
    "vit-b-16": _TEXT_B,
    "vit-l-14": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        vocab_size=49408,
    ),
    "tiny": _TEXT_TINY,
    "tiny-b16": _TEXT_TINY,
    "tiny-l14": _TEXT_TINY,
}
#: Texts the text tower's parity is measured on: prompts, and strings that stress the tokenizer.
TEXT_PARITY = [
    *(t.format(label) for t in OPENAI_7 for label in ("dog", "group photo of friends", "phone screenshot")),
    "Café  東京 🙂!!",
    "  multiple   spaces\tand\nnewlines ",
    "word " * 100,
]
INPUT_NAME, OUTPUT_NAME = "pixel_values", "image_embeds"
FP32_MIN_COSINE, INT8_MIN_COSINE = 0.99999, 0.99
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "images"


class ImageEmbeds(torch.nn.Module):
    """pixel_values → image_embeds (projected, not normalized: the head's weights decide normalization)."""

    def __init__(self, model: CLIPVisionModelWithProjection) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds: torch.Tensor = self.model(pixel_values=pixel_values).image_embeds
        return embeds


class PatchMatMul(torch.nn.Module):
    """A ViT patch embedding (Conv2d, kernel = stride = patch, no padding, no bias) as the same product
    written as a MatMul: the image cut into patches, each flattened, times the kernel as a matrix. Returns
    the Conv2d's ``[N, embed, grid, grid]``, so the vision embeddings around it are unchanged."""

    def __init__(self, conv: torch.nn.Conv2d) -> None:
        super().__init__()
        patch = int(conv.kernel_size[0])
        if conv.kernel_size != (patch, patch) or conv.stride != (patch, patch) or conv.bias is not None:
            raise SystemExit(f"the patch embedding {conv} is not a plain patch convolution")
        if conv.padding not in (0, (0, 0)) or conv.groups != 1 or conv.dilation != (1, 1):
            raise SystemExit(f"the patch embedding {conv} is not a plain patch convolution")
        # The vision embeddings read the dtype from here.
        self.weight = conv.weight
        self.patch = patch

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        channels, patch = pixels.shape[1], self.patch
        grid = pixels.shape[2] // patch
        embed = self.weight.shape[0]
        patches = pixels.reshape(-1, channels, grid, patch, grid, patch).permute(0, 2, 4, 1, 3, 5)
        flat = patches.reshape(-1, grid * grid, channels * patch * patch)
        out = flat @ self.weight.reshape(embed, -1).t()
        return out.transpose(1, 2).reshape(-1, embed, grid, grid)


def for_onnx(wrapper: torch.nn.Module, patch_embedding: str) -> torch.nn.Module:
    """The module to export: ``wrapper`` itself (``conv``), or a copy with its patch embedding as a MatMul
    (the reference for parity stays the unmodified ``wrapper``)."""
    if patch_embedding == "conv":
        return wrapper
    lean = copy.deepcopy(wrapper)
    # Both wrappers hold a transformers model with a vision tower: attribute access is theirs (untyped).
    embeddings: Any = getattr(lean.model, "vision_model").embeddings  # noqa: B009
    embeddings.patch_embedding = PatchMatMul(embeddings.patch_embedding)
    return lean


class ClipImageEmbeds(torch.nn.Module):
    """pixel_values → image_embeds from a full CLIPModel (``--text``: both towers from one model)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=pixel_values).pooler_output
        embeds: torch.Tensor = self.model.visual_projection(pooled)
        return embeds


class ClipTextEmbeds(torch.nn.Module):
    """input_ids [N, 77] → text_embeds: the projected hidden state at ``<|endoftext|>`` (causal attention,
    so padding after it changes nothing and no attention mask is needed)."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pooled = self.model.text_model(input_ids=input_ids).pooler_output
        embeds: torch.Tensor = self.model.text_projection(pooled)
        return embeds


def load_clip(args: argparse.Namespace, tokenizer_dir: Path) -> tuple[CLIPModel, Any, str, str]:
    """The whole CLIPModel (both towers) and its tokenizer saved to ``tokenizer_dir``."""
    if args.random_init:
        tokens = TextTokens(build_offline_tokenizer(tokenizer_dir))
        vision = {k: v for k, v in CONFIGS[args.config].items() if k != "projection_dim"}
        text = {
            **TEXT_CONFIGS[args.config],
            "max_position_embeddings": CONTEXT_LENGTH,
            "bos_token_id": tokens.bos_id,
            "eos_token_id": tokens.eos_id,
            "pad_token_id": tokens.pad_id,
        }
        text["vocab_size"] = max(text["vocab_size"], tokens.eos_id + 1)
        torch.manual_seed(args.seed)
        config = CLIPConfig(
            text_config=text, vision_config=vision, projection_dim=CONFIGS[args.config]["projection_dim"]
        )
        size = int(vision["image_size"])
        processor = CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
        return CLIPModel(config).eval(), processor, f"random-init/{args.config}", f"seed-{args.seed}"
    from transformers import AutoTokenizer

    try:
        model = CLIPModel.from_pretrained(args.model_id, revision=args.revision)
        processor = CLIPImageProcessor.from_pretrained(args.model_id, revision=args.revision)
        AutoTokenizer.from_pretrained(args.model_id, revision=args.revision).save_pretrained(
            str(tokenizer_dir)
        )
    except OSError as exc:
        raise SystemExit(_hub_error(args, exc)) from exc
    revision = "local" if Path(args.model_id).is_dir() else getattr(model.config, "_commit_hash", None)
    return model.eval(), processor, args.model_id, str(revision or args.revision)


def _hub_error(args: argparse.Namespace, exc: Exception) -> str:
    return (
        f"cannot load {args.model_id}@{args.revision} from the Hugging Face hub ({type(exc).__name__}): "
        "run this once where the hub is reachable, or pass --model-id a local checkpoint folder "
        "(offline, --random-init --config vit-b-32 exports a stand-in whose labels mean nothing)"
    )


def load(args: argparse.Namespace) -> tuple[CLIPVisionModelWithProjection, Any, str, str]:
    if args.random_init:
        torch.manual_seed(args.seed)
        config = CLIPVisionConfig(**CONFIGS[args.config])
        model = CLIPVisionModelWithProjection(config)
        size = int(CONFIGS[args.config]["image_size"])
        processor = CLIPImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
        model.eval()
        return model, processor, f"random-init/{args.config}", f"seed-{args.seed}"
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(args.model_id, revision=args.revision)
        processor = CLIPImageProcessor.from_pretrained(args.model_id, revision=args.revision)
    except OSError as exc:  # what transformers raises when the hub is unreachable or the id is unknown
        raise SystemExit(_hub_error(args, exc)) from exc
    # A hub download knows its commit; a local checkpoint directory has none to report.
    local = Path(args.model_id).is_dir()
    revision = "local" if local else getattr(model.config, "_commit_hash", None) or args.revision
    model.eval()
    return model, processor, args.model_id, str(revision)


def transform_of(processor: Any) -> ImageTransform:
    size = processor.size
    shortest = size["shortest_edge"] if "shortest_edge" in size else min(size["height"], size["width"])
    resample: Literal["bilinear", "bicubic"] | None = {2: "bilinear", 3: "bicubic"}.get(  # type: ignore[assignment]
        int(processor.resample)
    )
    if resample is None:
        raise SystemExit(f"unsupported resample {processor.resample!r} in the image processor config")
    return ImageTransform(
        shortest_edge=int(shortest),
        crop_height=int(processor.crop_size["height"]),
        crop_width=int(processor.crop_size["width"]),
        resample=resample,
        rescale_factor=float(processor.rescale_factor),
        image_mean=tuple(float(v) for v in processor.image_mean),  # type: ignore[arg-type]
        image_std=tuple(float(v) for v in processor.image_std),  # type: ignore[arg-type]
    )


def to_onnx(
    module: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str
) -> None:
    """One input, one output, a dynamic batch axis; the TorchScript exporter at opset 17, one file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent shapes the batch axis covers
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=17,
            dynamo=False,
            external_data=False,
        )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


def run_onnx(
    path: Path, inputs: np.ndarray, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output_name], {input_name: inputs})[0])


def parity_inputs(processor: Any, fixtures: list[Path], size: int, seed: int) -> np.ndarray:
    """Fixture images through the HF processor, plus random tensors, as one batch."""
    batches = []
    if fixtures:
        # Decoded by the runtime's own decoder (HEIC, EXIF orientation, 16-bit, alpha on white), then the
        # Hugging Face processor does resize/crop/normalize: the golden data is the reference pipeline.
        images = [to_rgb(open_image(p.read_bytes(), ImageLimits())) for p in fixtures]
        batches.append(processor(images=images, return_tensors="np")["pixel_values"].astype(np.float32))
    rng = np.random.default_rng(seed)
    batches.append(rng.normal(0, 1, size=(4, 3, size, size)).astype(np.float32))
    return np.concatenate(batches)


def export(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    clip: CLIPModel | None = None
    tokenizer_dir = out / "text" / "tokenizer"
    wrapper: torch.nn.Module
    if args.text:
        clip, processor, model_id, revision = load_clip(args, tokenizer_dir)
        wrapper = ClipImageEmbeds(clip).eval()
    else:
        model, processor, model_id, revision = load(args)
        wrapper = ImageEmbeds(model).eval()
    transform = transform_of(processor)
    size = transform.crop_height
    (out / "fp32").mkdir(parents=True, exist_ok=True)
    (out / "int8").mkdir(parents=True, exist_ok=True)
    fp32_path, int8_path = out / "fp32" / "model.onnx", out / "int8" / "model.onnx"

    exported = for_onnx(wrapper, args.patch_embedding)
    to_onnx(exported, torch.zeros(1, 3, size, size), fp32_path, INPUT_NAME, OUTPUT_NAME)
    del exported
    with tempfile.TemporaryDirectory() as tmp:
        comparison = choose_recipe(args, fp32_path, transform, reference_dim(wrapper, size), Path(tmp))
        chosen = comparison.measured[comparison.chosen]
        shutil.copyfile(chosen.path, int8_path)

    fixtures = sorted(p for p in args.fixtures.iterdir() if p.is_file()) if args.fixtures else []
    pixels = parity_inputs(processor, fixtures, size, args.seed)
    with torch.no_grad():
        reference = wrapper(torch.from_numpy(pixels)).numpy()
    fp32_cos = cosine(run_onnx(fp32_path, pixels), reference)
    int8_cos = cosine(run_onnx(int8_path, pixels), reference)
    parity = {
        "fp32_vs_torch_min_cosine": float(fp32_cos.min()),
        "int8_vs_torch_min_cosine": float(int8_cos.min()),
        "int8_vs_torch_mean_cosine": float(int8_cos.mean()),
        "parity_inputs": float(len(pixels)),
    }
    output_dim = int(reference.shape[1])
    now = datetime.now(UTC).isoformat(timespec="seconds")
    variants: list[tuple[str, Path, str, str, QuantizationReport | None]] = [
        ("fp32", fp32_path, "none", "fp32", None),
        ("int8", int8_path, chosen.recipe.quantization, chosen.recipe.name, comparison.report),
    ]
    for variant, path, quant, recipe, report in variants:
        manifest = ModelManifest(
            model_id=model_id,
            revision=revision,
            config_name=args.config if args.random_init else "pretrained",
            random_init=bool(args.random_init),
            image_size=size,
            transform=transform,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            output_dim=output_dim,
            quantization=quant,  # type: ignore[arg-type]
            quantization_recipe=recipe,
            quantization_report=report,
            model_file="model.onnx",
            model_sha256=sha256(path),
            parity=parity,
            created_at=now,
        )
        (out / variant / "manifest.json").write_text(
            manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )

    if clip is not None:
        parity.update(
            export_text(
                args, clip, tokenizer_dir, model_id, revision, [sha256(fp32_path), sha256(int8_path)], now
            )
        )
    if fixtures:
        golden = {
            "about": "torch fp32 image_embeds of each fixture, preprocessed by the Hugging Face CLIP image "
            "processor (PIL backend) on the image converted to RGB; weights/export_clip_onnx.py --fixtures",
            "model_id": model_id,
            "revision": revision,
            "fp32_model_sha256": sha256(fp32_path),
            "int8_model_sha256": sha256(int8_path),
            "images": {
                p.name: {
                    "sha256": sha256(p),
                    "embedding": [float(str(v)) for v in reference[i].astype(np.float32)],
                }
                for i, p in enumerate(fixtures)
            },
        }
        (out / "golden_embeddings.json").write_text(json.dumps(golden) + "\n", encoding="utf-8")

    print(f"model {model_id} ({revision}); output {OUTPUT_NAME}[{output_dim}]; input {size}x{size}")
    print(
        f"fp32 {fp32_path.stat().st_size / 1e6:.2f} MB, deployed ({chosen.recipe.name}) "
        f"{int8_path.stat().st_size / 1e6:.2f} MB"
    )
    print(
        f"parity vs torch on {len(pixels)} inputs: fp32 min cosine {fp32_cos.min():.7f}; "
        f"deployed min cosine {int8_cos.min():.5f} (mean {int8_cos.mean():.5f})"
    )
    if fp32_cos.min() < FP32_MIN_COSINE:
        raise SystemExit(f"fp32 ONNX parity {fp32_cos.min():.7f} < {FP32_MIN_COSINE}")
    if args.check_int8 and int8_cos.min() < INT8_MIN_COSINE:
        raise SystemExit(f"int8 parity {int8_cos.min():.5f} < {INT8_MIN_COSINE}")
    return parity


def export_text(
    args: argparse.Namespace,
    clip: CLIPModel,
    tokenizer_dir: Path,
    model_id: str,
    revision: str,
    vision_sha256: list[str],
    created_at: str,
) -> dict[str, float]:
    """OUT/text/{fp32,int8}: the text tower (``text_embeds``), its tokenizer, and a manifest pairing it with
    the vision models exported in the same run; parity against ``CLIPModel.get_text_features``."""
    text_out = args.out / "text"
    tokens = TextTokens(tokenizer_dir / "tokenizer.json", CONTEXT_LENGTH)
    ids = tokens.encode(TEXT_PARITY)
    wrapper = ClipTextEmbeds(clip).eval()
    fp32_path, int8_path = text_out / "fp32" / "model.onnx", text_out / "int8" / "model.onnx"
    for folder in (fp32_path.parent, int8_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
        for item in tokenizer_dir.iterdir():
            shutil.copyfile(item, folder / item.name)
    to_onnx(wrapper, torch.from_numpy(ids[:2]), fp32_path, TEXT_INPUT, TEXT_OUTPUT)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize(BY_NAME["dynamic-matmul-only"], prepared, int8_path, [], [])
    with torch.no_grad():
        reference = clip.get_text_features(input_ids=torch.from_numpy(ids)).pooler_output.numpy()
    fp32_cos = cosine(run_onnx(fp32_path, ids, TEXT_INPUT, TEXT_OUTPUT), reference)
    int8_cos = cosine(run_onnx(int8_path, ids, TEXT_INPUT, TEXT_OUTPUT), reference)
    parity = {
        "text_fp32_vs_torch_min_cosine": float(fp32_cos.min()),
        "text_int8_vs_torch_min_cosine": float(int8_cos.min()),
        "text_int8_vs_torch_mean_cosine": float(int8_cos.mean()),
        "text_parity_inputs": float(len(ids)),
    }
    for path, quant in ((fp32_path, "none"), (int8_path, "int8-dynamic")):
        manifest = TextModelManifest(
            model_id=model_id,
            revision=revision,
            config_name=args.config if args.random_init else "pretrained",
            random_init=bool(args.random_init),
            output_dim=int(reference.shape[1]),
            context_length=CONTEXT_LENGTH,
            pad_id=tokens.pad_id,
            logit_scale=float(clip.logit_scale.exp().item()),
            quantization=quant,  # type: ignore[arg-type]
            model_sha256=sha256(path),
            vision_model_sha256=vision_sha256,
            parity=parity,
            created_at=created_at,
        )
        (path.parent / "manifest.json").write_text(
            manifest.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
    shutil.rmtree(tokenizer_dir)
    print(
        f"text tower: text_embeds[{reference.shape[1]}], logit scale {clip.logit_scale.exp().item():.4f}; "
        f"parity vs torch on {len(ids)} texts: fp32 min cosine {fp32_cos.min():.7f}, "
        f"int8 min {int8_cos.min():.5f} (mean {int8_cos.mean():.5f})"
    )
    if fp32_cos.min() < FP32_MIN_COSINE:
        raise SystemExit(f"text fp32 ONNX parity {fp32_cos.min():.7f} < {FP32_MIN_COSINE}")
    return parity


def reference_dim(wrapper: torch.nn.Module, size: int) -> int:
    with torch.no_grad():
        return int(wrapper(torch.zeros(1, 3, size, size)).shape[1])


def calibration_pixels(folder: Path, transform: ImageTransform) -> np.ndarray:
    """The folder's images through the runtime's own preprocessing (what the deployed function feeds the
    model); unreadable files are skipped and listed, never fatal; no readable image is an error."""
    if not folder.is_dir():
        raise SystemExit(f"--calibration-images {folder} is not a folder")
    preprocess = Preprocessor(transform, mode="exact")
    pixels, skipped = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            pixels.append(preprocess(path.read_bytes()).pixels)
        except ImageError as exc:
            skipped.append(f"{path.name} ({exc.code})")
    if skipped:
        print(f"calibration: skipped {len(skipped)} unreadable file(s): {', '.join(skipped)}")
    if not pixels:
        raise SystemExit(f"--calibration-images {folder} holds no readable image")
    return np.concatenate(pixels)


def load_head(path: Path | None, output_dim: int) -> Head | None:
    if path is None:
        return None
    head = Head(parse_weights(path.read_bytes(), location=str(path)))
    if head.input_dim != output_dim:
        raise SystemExit(
            f"--head {path} expects {head.input_dim}-d features but this model outputs {output_dim}"
        )
    return head


def choose_recipe(
    args: argparse.Namespace, fp32_path: Path, transform: ImageTransform, dim: int, work_dir: Path
) -> Comparison:
    """Quantize with the recipes asked for, measure each against fp32, and say which one is deployed."""
    head = load_head(args.head, dim)
    pixels = calibration_pixels(args.calibration_images, transform)
    recipes = RECIPES if args.quantization == "auto" else (BY_NAME[args.quantization], BY_NAME["fp32"])
    comparison = compare_recipes(
        fp32_path,
        as_feeds(pixels, INPUT_NAME),
        OUTPUT_NAME,
        work_dir,
        head=head,
        min_cosine=args.min_cosine,
        min_top1=args.min_top1,
        recipes=recipes,
    )
    if args.quantization != "auto":
        # An explicit recipe is deployed as asked, with its figures, even below the floors.
        comparison.chosen = args.quantization
        comparison.report = comparison.report.model_copy(update={"chosen": args.quantization})
    print(f"quantization recipes on {len(pixels)} calibration image(s) from {args.calibration_images}:")
    print(render(comparison))
    for warning in comparison.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-id", default="openai/clip-vit-base-patch32")
    parser.add_argument("--revision", default="main")
    parser.add_argument(
        "--random-init", action="store_true", help="same architecture, random weights (offline)"
    )
    parser.add_argument("--config", choices=sorted(CONFIGS), default="vit-b-32", help="with --random-init")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--text",
        action="store_true",
        help="also export the text tower (OUT/text/{fp32,int8}) for zero-shot heads; both towers then come "
        "from one CLIPModel",
    )
    parser.add_argument("--fixtures", type=Path, help="folder of images for parity and golden embeddings")
    parser.add_argument(
        "--patch-embedding",
        choices=("matmul", "conv"),
        default="matmul",
        help="export the patch embedding as a MatMul (fast int8 GEMM; default) or as the checkpoint's Conv",
    )
    parser.add_argument(
        "--quantization",
        choices=["auto", *(r.name for r in RECIPES)],
        default="auto",
        help="auto: the fastest int8 recipe that meets the floors on the calibration images, else fp32",
    )
    parser.add_argument(
        "--calibration-images",
        type=Path,
        default=DEFAULT_CALIBRATION,
        help="your own photos (default: the test fixtures)",
    )
    parser.add_argument("--min-cosine", type=float, default=0.995, help="floor vs fp32, every image")
    parser.add_argument("--min-top1", type=float, default=0.99, help="with --head: top-1 agreement floor")
    parser.add_argument("--head", type=Path, help="a head weights JSON: also measure its agreement")
    parser.add_argument(
        "--no-check-int8",
        dest="check_int8",
        action="store_false",
        help="report int8 parity without failing (tiny random models quantize poorly)",
    )
    # onnxruntime's weight-only quantizer configures the root logger at INFO on import: a line per node.
    logging.getLogger().setLevel(logging.WARNING)
    export(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

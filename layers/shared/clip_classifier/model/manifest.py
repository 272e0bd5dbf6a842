"""The model manifest written beside every exported ONNX image embedder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clip_classifier.exceptions import ModelFormatError, ModelNotFoundError
from clip_classifier.image.transform import ImageTransform
from clip_classifier.model.cpu_features import CpuFeatures


class RecipeFigures(BaseModel):
    """One quantization recipe measured against fp32 on the calibration inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_cosine: float
    mean_cosine: float
    #: With a head: the share of inputs whose top-1 class is fp32's, and the largest probability change.
    top1_agreement: float | None = None
    max_probability_change: float | None = None
    embed_ms: float = Field(description="Median time per calibration input, this machine.")
    passed: bool
    #: Quantizable nodes left in fp32 (the sensitive-node recipe).
    fp32_nodes: int = 0


class QuantizationReport(BaseModel):
    """How the deployed variant was chosen (``weights/export_clip_onnx.py --quantization auto``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chosen: str
    min_cosine: float
    min_top1_agreement: float | None = None
    head_version: str | None = None
    calibration_inputs: int
    #: The CPU the figures were measured on: int8 kernels (and numerics) differ between these.
    cpu: CpuFeatures | None
    onnxruntime: str
    recipes: dict[str, RecipeFigures]


class ExportedModel(BaseModel):
    """What every exported ONNX tower's manifest says: which checkpoint, which file, its names and size."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_id: str
    revision: str
    config_name: str = Field(description="'pretrained', or the random-init config (vit-b-32, tiny).")
    random_init: bool
    input_name: str
    output_name: str
    output_dim: int = Field(ge=1)
    model_file: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parity: dict[str, float] = Field(default_factory=dict, description="Figures measured at export.")
    created_at: str
    exported_by: str = "weights/export_clip_onnx.py"


class ModelManifest(ExportedModel):
    """The image tower: what the upload function runs, and the transform its inputs need."""

    format: Literal["clip-image-embedder"] = "clip-image-embedder"
    format_version: Literal[1] = 1
    image_size: int
    transform: ImageTransform
    quantization: Literal["none", "int8-dynamic", "int8-static", "int8-weight-only"]
    #: The recipe this file was made with (``dynamic-per-tensor``, ``static-qdq-per-channel``, ``fp32`` ...).
    quantization_recipe: str | None = None
    quantization_report: QuantizationReport | None = None


def load_manifest(path: Path) -> ModelManifest:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"model manifest {path} does not exist") from exc
    try:
        return ModelManifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ModelFormatError(f"invalid model manifest {path}: {exc.errors(include_url=False)[:3]}") from exc


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

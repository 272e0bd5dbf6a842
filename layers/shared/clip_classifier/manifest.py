"""The model manifest written beside every exported ONNX image embedder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .exceptions import ModelFormatError, ModelNotFoundError


class ImageTransform(BaseModel):
    """Resize/crop/rescale/normalize parameters, taken from the model's own image processor config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shortest_edge: int = Field(ge=1, description="Resize so the shorter side has this many pixels.")
    crop_height: int = Field(ge=1)
    crop_width: int = Field(ge=1)
    resample: Literal["bicubic", "bilinear"] = "bicubic"
    rescale_factor: float = Field(gt=0)
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


class ModelManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: Literal["clip-image-embedder"] = "clip-image-embedder"
    format_version: Literal[1] = 1
    model_id: str
    revision: str
    config_name: str = Field(description="'pretrained', or the random-init config (vit-b-32, tiny).")
    random_init: bool
    image_size: int
    transform: ImageTransform
    input_name: str
    output_name: str
    output_dim: int = Field(ge=1)
    quantization: Literal["none", "int8-dynamic"]
    model_file: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parity: dict[str, float] = Field(default_factory=dict, description="Figures measured at export.")
    created_at: str
    exported_by: str = "weights/export_clip_onnx.py"


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

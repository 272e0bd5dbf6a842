"""The image transform a model expects: resize, centre crop, rescale and normalise.

The parameters come from the model's own image-processor config at export and are recorded in its
manifest (:mod:`clip_classifier.model.manifest`); preprocessing (:mod:`.preprocess`) applies them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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

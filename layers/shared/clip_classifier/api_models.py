"""Request and response bodies of the feature-scoring API (also the source of its OpenAPI document)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from pydantic.alias_generators import to_camel

#: JSON numbers only (no strings, booleans or null), and never NaN/Infinity.
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]

#: Printable, no slash (it is a URL path segment), at most 200 characters.
PICTURE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~:@!$&'()*+,;=-]{0,199}$"
PictureId = Annotated[str, Field(pattern=PICTURE_ID_PATTERN, examples=["IMG_0042.jpg"])]

#: Hard ceilings of the schema; the configured limits (MAX_BATCH_ITEMS) are checked by the service.
MAX_FEATURES = 4096
MAX_ITEMS = 1000


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class FeatureItem(_Body):
    picture_id: PictureId | None = Field(default=None, description="If given, the result is stored.")
    # repr=False: libraries log parsed bodies at DEBUG (Powertools does); a vector must never be printed.
    features: list[FiniteNumber] = Field(min_length=1, max_length=MAX_FEATURES, repr=False)


def _one_of_schema(schema: dict[str, Any]) -> None:
    """Say in the OpenAPI document what the validator enforces: non-null fields, one vector XOR a batch."""
    for prop in schema.get("properties", {}).values():
        branches = prop.pop("anyOf", None)
        if branches:
            prop.update(next(b for b in branches if b.get("type") != "null"))
        prop.pop("default", None)
    schema["oneOf"] = [
        {"required": ["features"], "not": {"required": ["items"]}},
        {"required": ["items"], "not": {"anyOf": [{"required": ["features"]}, {"required": ["pictureId"]}]}},
    ]


class ScoreRequest(_Body):
    """Either one vector (``features`` and optional ``pictureId``) or a batch (``items``)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", json_schema_extra=_one_of_schema
    )

    picture_id: PictureId | None = None
    features: list[FiniteNumber] | None = Field(
        default=None, min_length=1, max_length=MAX_FEATURES, repr=False
    )
    items: list[FeatureItem] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for field in ("features", "items"):
                if field in data and data[field] is None:
                    raise ValueError(f"{field} must be an array, not null")
            has_features, has_items = "features" in data, "items" in data
            if has_features == has_items:
                raise ValueError("send exactly one of 'features' (one vector) or 'items' (a batch)")
            if has_items and "pictureId" in data:
                raise ValueError("'pictureId' goes inside each entry of 'items'")
        return data

    def entries(self) -> list[FeatureItem]:
        if self.items is not None:
            return self.items
        assert self.features is not None
        return [FeatureItem(picture_id=self.picture_id, features=self.features)]


class ScoreResult(_Body):
    picture_id: str | None = None
    classes: list[str]
    probabilities: dict[str, float]
    scores: dict[str, float]
    top_label: str
    top_probability: float
    head_version: str
    stored: bool


class BatchScoreResponse(_Body):
    items: list[ScoreResult]


class EmbedderInfo(_Body):
    model_id: str
    model_sha256: str
    output_dim: int
    quantization: str


class ModelInfo(_Body):
    classes: list[str]
    input_dim: int
    input_normalization: str
    output: str
    head_type: str
    head_version: str
    max_batch_items: int
    embedder: EmbedderInfo | None = None


class ErrorDetail(_Body):
    field: str | None = None
    message: str


class GatewayError(_Body):
    """API Gateway's own answer (missing or wrong API key, unknown route, throttled)."""

    message: str


class ErrorBody(_Body):
    code: str
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)

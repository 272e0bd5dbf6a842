"""Request and response bodies of the feature-scoring API (also the source of its OpenAPI document).

The API's contract, kept apart from the DynamoDB item (:mod:`.records`): storage can change without
breaking clients. The schema here checks JSON shape and types; what needs the head (dimension, range,
norm, duplicate ids, batch size) is checked in one step by :mod:`.score_request`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, Strict, model_validator
from pydantic.alias_generators import to_camel

from clip_classifier.camel import CamelModel
from clip_classifier.head.result_fields import (
    AMBIGUOUS_DESCRIPTION,
    TOP_DESCRIPTION,
    RankedLabel,
    ResultFields,
)
from clip_classifier.limits import MAX_TRANSACTION_ITEMS
from clip_classifier.storage.picture_id import PICTURE_ID_PATTERN

#: JSON numbers only (no strings, booleans or null), and never NaN/Infinity.
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]

PictureId = Annotated[str, Field(pattern=PICTURE_ID_PATTERN, examples=["IMG_0042.jpg"])]

#: Hard ceilings of the schema; the configured limits (MAX_BATCH_ITEMS) are checked by the service.
MAX_FEATURES = 4096
#: A batch is stored in one DynamoDB transaction, so it holds at most what one transaction takes.
MAX_ITEMS = MAX_TRANSACTION_ITEMS


_Body = CamelModel


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
            if set(data) - {"features", "items", "pictureId"}:
                return data  # unknown fields: named by the schema's own extra-field errors, which say which
            for field in ("features", "items"):
                if field in data and data[field] is None:
                    raise ValueError(f"{field} must be an array, not null")
            has_features, has_items = "features" in data, "items" in data
            if has_features == has_items:
                raise ValueError("send exactly one of 'features' (one vector) or 'items' (a batch)")
            if has_items and "pictureId" in data:
                raise ValueError("'pictureId' goes inside each entry of 'items'")
        return data

    @property
    def is_batch(self) -> bool:
        return self.items is not None


class ScoreResult(ResultFields):
    picture_id: str | None = None
    stored: bool


class BatchScoreResponse(_Body):
    items: list[ScoreResult]


class ResultSource(_Body):
    """Where a stored result came from: the API, or an S3 object (bucket, key, version)."""

    type: Literal["api", "s3"]
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    event_time: str | None = None
    last_modified: str | None = None


class ResultError(_Body):
    code: str = Field(examples=["image_corrupt"])
    message: str


class Classification(_Body):
    """A stored result as clients see it (``GET /v1/classifications/{pictureId}``)."""

    picture_id: str
    status: Literal["classified", "failed", "deleted"]
    classes: list[str] | None = None
    probabilities: dict[str, float] | None = None
    scores: dict[str, float] | None = None
    top_label: str | None = None
    top_probability: float | None = None
    top: list[RankedLabel] | None = Field(default=None, description=TOP_DESCRIPTION)
    ambiguous: bool | None = Field(default=None, description=AMBIGUOUS_DESCRIPTION)
    head_version: str | None = None
    #: sha256 of the image embedder's model file (uploads only).
    embedder_version: str | None = None
    source: ResultSource
    error: ResultError | None = None
    created_at: str
    updated_at: str
    person_label: str | None = Field(
        default=None,
        description="A person's label for the image (the review loop), kept beside the machine's topLabel: one "
        'of the head\'s classes or "none of these". Who gave it stays in the table, not in this answer.',
    )
    labeled_at: str | None = Field(default=None, description="When the person's label was given.")
    final_label: str | None = Field(
        default=None, description="personLabel when a person gave one, else topLabel."
    )
    embedding: list[float] | None = Field(
        default=None,
        description="Only with ?include=embedding, for uploads that kept theirs: the image features the head "
        "scored (the stored L2-normalised embedding, int8 or float16, times its norm). POST them to /v1/scores "
        "for the same probabilities under the current head.",
    )


class ImageTransformInfo(_Body):
    shortest_edge: int
    crop_height: int
    crop_width: int
    resample: str
    rescale_factor: float
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]


class EmbedderInfo(_Body):
    """The image embedder whose features the head expects: compute client-side features with this model."""

    model_id: str = Field(examples=["openai/clip-vit-base-patch32"])
    revision: str
    random_init: bool
    model_sha256: str
    output_dim: int
    quantization: str
    transform: ImageTransformInfo


class HeadInfo(_Body):
    """The head served now: its version (results carry it as ``headVersion``), where it came from, and
    who registered and activated it (from the head registry; null for a head served from a file)."""

    version: str
    head_type: str
    source: str = Field(examples=["zero-shot from 36 class prompts"])
    #: False for the random example head: its labels mean nothing.
    meaningful: bool
    registered_by: str | None = None
    registered_at: str | None = None
    activated_by: str | None = None
    activated_at: str | None = None


class ModelInfo(_Body):
    classes: list[str]
    input_dim: int
    input_normalization: str
    output: str
    head_type: str
    head_version: str
    max_batch_items: int
    embedder: EmbedderInfo
    head: HeadInfo


class ErrorDetail(_Body):
    field: str | None = None
    message: str


class ErrorBody(_Body):
    code: str
    message: str
    errors: list[ErrorDetail] = Field(default_factory=list)

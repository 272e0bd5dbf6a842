"""Per-function configuration: ``template.yaml`` Parameters/Globals → environment → a settings object.

Each function reads exactly the variables it uses, named after the field in upper case
(``results_table`` ← ``RESULTS_TABLE``). Required fields have no default, so a function whose environment
lacks one fails at cold start with the variable's name (:func:`load_settings`). An empty variable counts as
unset. The settings are plain pydantic models validated from an explicit mapping (the process environment
by default): tests and the local stack pass the template's variables, or build a settings object directly
with keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clip_classifier.exceptions import ConfigurationError
from clip_classifier.image.limits import (
    DEFAULT_MAX_DECODE_SECONDS,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
)
from clip_classifier.limits import MAX_TRANSACTION_ITEMS

#: Lambda's only writable place; both functions keep the head weights here.
DEFAULT_CACHE_DIR = Path("/tmp/clip-classifier")  # noqa: S108 - Lambda's /tmp

#: A comma-separated variable (``.jpg, .png``), as a tuple.
CommaSeparated = tuple[str, ...]


def _split(value: Any, *, lower: bool = False) -> Any:
    if isinstance(value, str):
        parts = (s.strip() for s in value.split(","))
        return tuple(p.lower() if lower else p for p in parts if p)
    return value


class Settings(BaseModel):
    """What every function's settings are: frozen, read from named variables only."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class FunctionSettings(Settings):
    """What every function that serves the active head needs: the results table and the head weights."""

    results_table: str = Field(min_length=1, description="DynamoDB table of classification results.")
    weights_uri: str = Field(min_length=1, description="s3://bucket/key or a local path of the head.")
    weights_refresh_seconds: float = Field(default=300.0, ge=0)
    cache_dir: Path = DEFAULT_CACHE_DIR


class ScoreSettings(FunctionSettings):
    """The feature-scoring API (zip function)."""

    #: At most 100: a batch is stored in one DynamoDB transaction (all or nothing).
    max_batch_items: int = Field(default=100, ge=1, le=MAX_TRANSACTION_ITEMS)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    #: The manifest of the image embedder the upload function runs, so ``GET /v1/model`` can name the model
    #: whose features the head expects. ``sam build`` copies it into the function (Makefile, MODEL_DIR).
    embedder_manifest: Path
    cors_allow_origins: CommaSeparated = ()

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return _split(value)


class ReviewSettings(FunctionSettings):
    """The reviewers' API (zip function): the review queue and people's labels."""

    #: The upload bucket: queued uploads get presigned links to their image there, and nowhere else.
    upload_bucket: str = Field(min_length=3)
    image_link_seconds: int = Field(default=300, ge=60, le=3600)
    cors_allow_origins: CommaSeparated = ()
    #: The EventBridge bus labels are announced on (``PublishEvents=true``); empty: none.
    event_bus_name: str = ""
    #: As the upload function's: a withdrawn label sends a sampled confident result back to the queue.
    review_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return _split(value)


class UploadSettings(FunctionSettings):
    """The S3 upload classifier (container image). The manifest is read from beside the model."""

    model_path: Path
    #: Events for any other bucket are ignored with a warning (empty: accept every bucket).
    upload_bucket: str = ""
    max_image_bytes: int = Field(default=DEFAULT_MAX_IMAGE_BYTES, ge=1)
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_decode_seconds: float = Field(default=DEFAULT_MAX_DECODE_SECONDS, gt=0)
    key_prefix: str = ""
    key_suffixes: CommaSeparated = ()
    preprocess_mode: Literal["auto", "exact", "fast"] = "auto"
    #: Keep each classified image's embedding (int8, 521 B) in its item, so a new head can re-score it.
    store_embeddings: bool = True
    intra_op_threads: int = Field(default=0, ge=0, description="0 = the CPUs this process may use.")
    #: The EventBridge bus stored results are announced on (``PublishEvents=true``); empty: none.
    event_bus_name: str = ""
    #: The share of confident results that also wait for a person (an honest accuracy estimate).
    review_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @field_validator("key_suffixes", mode="before")
    @classmethod
    def _suffixes(cls, value: Any) -> Any:
        return _split(value, lower=True)


class RescoreSettings(FunctionSettings):
    """The rescore function (zip): stored embeddings → results under the current head."""

    #: The deployed image embedder's manifest: embeddings from any other model are listed, not scored.
    embedder_manifest: Path
    #: Where the keys it cannot score are listed for a backfill (S3 Inventory–style CSV + manifest.json).
    reports_bucket: str = Field(min_length=3)
    reports_prefix: str = "rescore/"
    #: The bucket the listed keys are in (the manifest's sourceBucket).
    upload_bucket: str = Field(min_length=3)
    #: Items per scan page: one page is scored, then the call's deadline is checked. Small pages keep every
    #: request short (DynamoDB bills a scan by the data read, not by the number of pages).
    page_size: int = Field(default=100, ge=1, le=10_000)
    #: As the upload function's: the review queue follows the new results by the same rule.
    review_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)


class EvaluateSettings(Settings):
    """The shadow evaluation's function (zip): registered heads by version, stored embeddings, reports."""

    results_table: str = Field(min_length=1)
    #: The deployed image embedder's manifest: embeddings from any other model are counted, not scored.
    embedder_manifest: Path
    heads_bucket: str = Field(min_length=3)
    heads_table: str = Field(min_length=1)
    reports_bucket: str = Field(min_length=3)
    reports_prefix: str = "evaluations/"
    #: Items per scan page: both heads score a page as one batch.
    page_size: int = Field(default=500, ge=1, le=10_000)


S = TypeVar("S", bound=Settings)


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """``cls`` from ``environ`` (default: the process environment), or a :class:`ConfigurationError`
    naming every variable that is missing or malformed.

    Only the variables of ``cls``'s own fields are read (``RESULTS_TABLE`` for ``results_table``); an
    empty one counts as unset. An explicit mapping is read alone — the process environment is not
    consulted — so the local stack and tests configure a function from the template's variables without
    touching ``os.environ``.
    """
    source = os.environ if environ is None else environ
    values = {name: source[name.upper()] for name in cls.model_fields if source.get(name.upper(), "") != ""}
    try:
        return cls.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]).upper() if err["loc"] else "environment"
            problems.append(f"{name} is required" if err["type"] == "missing" else f"{name}: {err['msg']}")
        raise ConfigurationError(f"invalid configuration: {'; '.join(problems)}") from exc

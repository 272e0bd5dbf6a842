"""The DynamoDB item: one classification result (or failure, or deletion marker) per ``pictureId``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .head import Prediction

Status = Literal["classified", "failed", "deleted"]

#: S3 sequencers are hex strings of varying length; left-padded to this width they compare as numbers.
SEQUENCER_WIDTH = 40


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalize_sequencer(sequencer: str) -> str:
    """Left-pad a hex sequencer so plain string comparison (as in a DynamoDB condition) orders them."""
    value = sequencer.strip().upper()
    int(value, 16)  # a non-hex sequencer is a malformed event: fail loudly
    return value.rjust(SEQUENCER_WIDTH, "0")


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ErrorInfo(_Camel):
    code: str
    message: str


class SourceInfo(_Camel):
    type: Literal["api", "s3"]
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    event_time: str | None = None


class ClassificationRecord(_Camel):
    picture_id: str = Field(min_length=1)
    status: Status
    classes: list[str] | None = None
    probabilities: dict[str, float] | None = None
    scores: dict[str, float] | None = None
    top_label: str | None = None
    top_probability: float | None = None
    head_version: str | None = None
    embedder_version: str | None = None
    source: SourceInfo
    #: Normalized S3 sequencer of the event that produced this item (absent for API results).
    sequencer: str | None = None
    error: ErrorInfo | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)
    #: Epoch seconds; DynamoDB TTL removes deletion markers after a while.
    expires_at: int | None = None

    @classmethod
    def classified(
        cls,
        picture_id: str,
        prediction: Prediction,
        *,
        head_version: str,
        source: SourceInfo,
        embedder_version: str | None = None,
        sequencer: str | None = None,
    ) -> ClassificationRecord:
        return cls(
            picture_id=picture_id,
            status="classified",
            classes=list(prediction.classes),
            probabilities=dict(zip(prediction.classes, prediction.probabilities, strict=True)),
            scores=dict(zip(prediction.classes, prediction.scores, strict=True)),
            top_label=prediction.top_label,
            top_probability=prediction.top_probability,
            head_version=head_version,
            embedder_version=embedder_version,
            source=source,
            sequencer=sequencer,
        )

    @classmethod
    def failed(
        cls, picture_id: str, *, code: str, message: str, source: SourceInfo, sequencer: str | None = None
    ) -> ClassificationRecord:
        return cls(
            picture_id=picture_id,
            status="failed",
            error=ErrorInfo(code=code, message=message),
            source=source,
            sequencer=sequencer,
        )

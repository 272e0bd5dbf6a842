"""The reviewers' API bodies (``GET /v1/review``, ``PUT``/``DELETE /v1/classifications/{pictureId}/label``)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.result_fields import RankedLabel

#: A page of the queue: small, because a person looks at every item of it.
MAX_PAGE = 100
DEFAULT_PAGE = 20


class LabelRequest(CamelModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(
        min_length=1,
        max_length=256,
        description='One of the active head\'s classes, or "none of these" when no class fits.',
        examples=["pet"],
    )


class ReviewItem(CamelModel):
    """A result waiting for a person: what the head said, and (for uploads) a short-lived image link."""

    picture_id: str
    top: list[RankedLabel] = Field(description="The head's three most probable labels, best first.")
    margin: float | None = Field(
        default=None, description="Top-1 minus top-2 probability: the queue's order."
    )
    ambiguous: bool | None = None
    head_version: str | None = None
    created_at: str | None = None
    source: Literal["api", "s3"]
    key: str | None = Field(default=None, description="The upload's S3 key (uploads only).")
    image_url: str | None = Field(
        default=None,
        description="A presigned GET of the uploaded image, valid a few minutes (uploads only; API results "
        "were scored from features and have no image).",
    )


class ReviewQueuePage(CamelModel):
    items: list[ReviewItem]
    cursor: str | None = Field(
        default=None, description="Pass as ?cursor= for the next page; null at the end."
    )
    classes: list[str] = Field(description="The active head's classes: the labels a reviewer may give.")
    head_version: str
    none_of_these: str = Field(description='The label for "no class fits".')


class LabelResult(CamelModel):
    """A result's labels after a reviewer's change."""

    picture_id: str
    person_label: str | None = None
    labeled_at: str | None = None
    top_label: str | None = None
    final_label: str | None = Field(
        default=None, description="personLabel when a person gave one, else topLabel."
    )
    queued: bool = Field(description="Whether the result waits in the review queue now.")

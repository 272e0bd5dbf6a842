"""What the stack tells other systems, as EventBridge events (``PublishEvents=true``): plain models, no SDK.

Four detail types, each with a JSON schema in ``infra/event-schemas/`` (written from these models by
``python -m clip_local.event_schemas``, and tested to be current): ``Classification Completed`` (an upload's
result), ``Review Needed`` (that result waits for a person), ``Label Added`` (a person labelled a result) and
``Head Activated``. Never an embedding, never image bytes: identifiers, labels and numbers only.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.result_fields import RankedLabel
from clip_classifier.storage.result_item import ClassificationItem
from clip_classifier.storage.review_queue import OPEN

#: The events' ``source`` (rules match on it).
SOURCE = "clip-classifier"


class Detail(CamelModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: EventBridge's ``detail-type``.
    DETAIL_TYPE: ClassVar[str]


class ClassificationCompleted(Detail):
    """An uploaded image was classified (not for backfills, whose runs would flood a bus)."""

    DETAIL_TYPE: ClassVar[str] = "Classification Completed"
    picture_id: str
    key: str | None = Field(default=None, description="The S3 key of the upload.")
    top_label: str
    top_probability: float
    ambiguous: bool | None = Field(default=None, description="Marked by the head's guard; null: no guard.")
    head_version: str


class ReviewNeeded(Detail):
    """A result entered the review queue."""

    DETAIL_TYPE: ClassVar[str] = "Review Needed"
    picture_id: str
    margin: float = Field(description="Top-1 minus top-2 probability: the queue's order, smallest first.")
    top: list[RankedLabel]
    head_version: str


class LabelAdded(Detail):
    """A person labelled a result (``labelledBy``: their identity, in your own account's bus)."""

    DETAIL_TYPE: ClassVar[str] = "Label Added"
    picture_id: str
    label: str
    machine_label: str | None = Field(default=None, description="The result's topLabel at the time.")
    labeled_by: str
    labeled_at: str


class HeadActivated(Detail):
    """Another head is now active (an activation or a rollback)."""

    DETAIL_TYPE: ClassVar[str] = "Head Activated"
    version: str
    previous: str | None = None
    head_type: str
    classes: int
    activated_by: str
    activated_at: str


DETAILS: tuple[type[Detail], ...] = (ClassificationCompleted, ReviewNeeded, LabelAdded, HeadActivated)


def upload_events(item: ClassificationItem) -> list[Detail]:
    """What a stored upload result announces: its completion, and that it waits for a person if it does."""
    if item.status != "classified" or item.top_label is None or item.head_version is None:
        return []
    events: list[Detail] = [
        ClassificationCompleted(
            picture_id=item.picture_id,
            key=item.source.key,
            top_label=item.top_label,
            top_probability=float(item.top_probability or 0.0),
            ambiguous=item.ambiguous,
            head_version=item.head_version,
        )
    ]
    if item.review_queue == OPEN:
        events.append(
            ReviewNeeded(
                picture_id=item.picture_id,
                margin=float(item.review_margin or 0.0),
                top=list(item.top or []),
                head_version=item.head_version,
            )
        )
    return events

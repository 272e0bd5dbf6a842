"""The DynamoDB item: one classification result (or failure, or deletion marker) per ``pictureId``.

This is the storage contract only. It holds internal fields (the S3 ``sequencer`` that orders writes, the
TTL attribute ``expiresAt``) that clients never see: the API answers with
:class:`~.api_models.Classification`, converted in :mod:`.scoring`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.result_fields import RankedLabel, ResultFields
from clip_classifier.storage.review_queue import review_state

ItemStatus = Literal["classified", "failed", "deleted"]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Stored(CamelModel):
    # Items written by an older version may carry attributes this one no longer knows.
    model_config = ConfigDict(extra="ignore")


class ErrorInfo(_Stored):
    code: str
    message: str


class SourceInfo(_Stored):
    type: Literal["api", "s3"]
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    event_time: str | None = None
    #: The S3 version's LastModified (ISO-8601 UTC): how backfill writes are ordered (no sequencer there).
    last_modified: str | None = None


class ClassificationItem(_Stored):
    picture_id: str = Field(min_length=1)
    status: ItemStatus
    classes: list[str] | None = None
    probabilities: dict[str, float] | None = None
    scores: dict[str, float] | None = None
    top_label: str | None = None
    top_probability: float | None = None
    top: list[RankedLabel] | None = None
    ambiguous: bool | None = None
    head_version: str | None = None
    embedder_version: str | None = None
    #: The image's embedding (:mod:`.embedding_codec`), kept so a new head can re-score it; never logged
    #: (``repr=False``) and returned by the API only when asked for.
    embedding: bytes | None = Field(default=None, repr=False)
    source: SourceInfo
    #: A person's label for the image (the review loop), which an evaluation scores both heads against;
    #: who gave it (their identity's subject) and when. A new image under the key clears all three.
    person_label: str | None = None
    labeled_by: str | None = None
    labeled_at: str | None = None
    #: ``open`` while the result waits for a person (the sparse ``ReviewQueue`` index), and the top-1/top-2
    #: margin it is ordered by (:mod:`.review_queue`).
    review_queue: str | None = None
    review_margin: float | None = None
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
        result: ResultFields,
        *,
        source: SourceInfo,
        embedder_version: str | None = None,
        embedding: bytes | None = None,
        sequencer: str | None = None,
        review_sample_rate: float = 0.0,
    ) -> ClassificationItem:
        queue, order = review_state(picture_id, result, labelled=False, sample_rate=review_sample_rate)
        return cls(
            picture_id=picture_id,
            status="classified",
            **dict(result),
            review_queue=queue,
            review_margin=order,
            embedder_version=embedder_version,
            embedding=embedding,
            source=source,
            sequencer=sequencer,
        )

    @property
    def final_label(self) -> str | None:
        """The person's label when there is one, else the machine's top label."""
        return self.person_label or self.top_label

    def with_label_of(self, other: ClassificationItem) -> ClassificationItem:
        """This result with ``other``'s person label (same image: the label survives a re-classification);
        out of the review queue when labelled."""
        if other.person_label is None:
            return self
        return self.model_copy(
            update={
                "person_label": other.person_label,
                "labeled_by": other.labeled_by,
                "labeled_at": other.labeled_at,
                "review_queue": None,
            }
        )

    @classmethod
    def failed(
        cls, picture_id: str, *, code: str, message: str, source: SourceInfo, sequencer: str | None = None
    ) -> ClassificationItem:
        return cls(
            picture_id=picture_id,
            status="failed",
            error=ErrorInfo(code=code, message=message),
            source=source,
            sequencer=sequencer,
        )

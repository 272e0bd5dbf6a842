"""The reviewers' side of the review loop over HTTP: the queue, a person's label, and its withdrawal.

The same store methods as ``clip-classifier review`` (an operator's terminal), for people who sign in
(Cognito): who they are comes from the authorizer's verified claims, never from the request body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from clip_classifier.api.review_models import LabelResult, ReviewItem, ReviewQueuePage
from clip_classifier.events.messages import LabelAdded
from clip_classifier.exceptions import ResultNotFoundError
from clip_classifier.ports import EventPublisher, HeadProvider, ReviewResults
from clip_classifier.storage.result_item import ClassificationItem
from clip_classifier.storage.review_queue import (
    NONE_OF_THESE,
    check_label,
    decode_cursor,
    encode_cursor,
    needs_review,
)


class ImageLinks(Protocol):
    def link(self, bucket: str | None, key: str | None, version_id: str | None) -> str | None:
        """A short-lived URL of the uploaded image, or ``None`` when there is none to give."""
        ...


@dataclass(frozen=True)
class ReviewService:
    store: ReviewResults
    head: HeadProvider
    links: ImageLinks
    clock: Callable[[], str]
    #: The stack's bus (``PublishEvents``): each label is announced as ``Label Added``.
    events: EventPublisher | None = None
    #: As the upload function's: a withdrawn label sends a sampled confident result back to the queue.
    review_sample_rate: float = 0.0

    def page(self, *, limit: int, cursor: str | None) -> ReviewQueuePage:
        head = self.head.get()
        page = self.store.review_page(limit=limit, start_key=decode_cursor(cursor))
        return ReviewQueuePage(
            items=[self._item(i) for i in page.items],
            cursor=encode_cursor(page.next_key),
            classes=list(head.classes),
            head_version=head.version,
            none_of_these=NONE_OF_THESE,
        )

    def _item(self, item: ClassificationItem) -> ReviewItem:
        source = item.source
        return ReviewItem(
            picture_id=item.picture_id,
            top=list(item.top or [])[:3],
            margin=item.review_margin,
            ambiguous=item.ambiguous,
            head_version=item.head_version,
            created_at=item.created_at,
            source=source.type,
            key=source.key,
            image_url=self.links.link(source.bucket, source.key, source.version_id)
            if source.type == "s3"
            else None,
        )

    def label(self, picture_id: str, label: str, *, by: str) -> tuple[LabelResult, int]:
        """Record ``by``'s label (:func:`give_label`), and how many events were not published."""
        item, unpublished = give_label(
            self.store,
            picture_id,
            label,
            classes=self.head.get().classes,
            by=by,
            at=self.clock(),
            events=self.events,
        )
        result = LabelResult(
            picture_id=picture_id,
            person_label=item.person_label,
            labeled_at=item.labeled_at,
            top_label=item.top_label,
            final_label=item.final_label,
            queued=False,
        )
        return result, unpublished

    def unlabel(self, picture_id: str) -> LabelResult:
        """Withdraw the person's label (:func:`withdraw_label`)."""
        item, queued = withdraw_label(self.store, picture_id, review_sample_rate=self.review_sample_rate)
        return LabelResult(
            picture_id=picture_id, top_label=item.top_label, final_label=item.top_label, queued=queued
        )


def give_label(
    store: ReviewResults,
    picture_id: str,
    label: str,
    *,
    classes: Sequence[str],
    by: str,
    at: str,
    events: EventPublisher | None,
) -> tuple[ClassificationItem, int]:
    """A person's label beside the machine's result, announced as ``Label Added`` (the one path of the
    reviewers' route and ``clip-classifier review label``): the item as written, and how many events were
    not published (a failed publish never fails the label). A :class:`~.exceptions.LabelError` names a label
    outside ``classes``, a :class:`~.exceptions.ResultNotFoundError` a picture with no classified result."""
    stored = check_label(label, classes)
    item = store.set_label(picture_id, stored, by=by, at=at)
    if item is None:
        raise ResultNotFoundError(f"no classified result for pictureId '{picture_id}'")
    if events is None:
        return item, 0
    added = LabelAdded(
        picture_id=picture_id, label=stored, machine_label=item.top_label, labeled_by=by, labeled_at=at
    )
    return item, events.publish([added])


def withdraw_label(
    store: ReviewResults, picture_id: str, *, review_sample_rate: float
) -> tuple[ClassificationItem, bool]:
    """Withdraw the person's label: the item as it was, and whether it waits in the queue again (it still
    needs a person). :class:`~.exceptions.ResultNotFoundError` when there is no label, or it changed
    meanwhile (another reviewer)."""
    item = store.get(picture_id)
    if item is None or item.person_label is None:
        raise ResultNotFoundError(f"pictureId '{picture_id}' has no person's label to withdraw")
    if not store.clear_label(item, review_sample_rate=review_sample_rate):
        raise ResultNotFoundError(f"pictureId '{picture_id}': its label changed meanwhile; look again")
    queued = needs_review(picture_id, item.ambiguous, labelled=False, sample_rate=review_sample_rate)
    return item, queued

"""The results table in memory, behind the result ports, with the same conditional-write rules as
:class:`~clip_classifier.storage.results_table.ResultsStore` (each method names the expression it mirrors)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from clip_classifier.exceptions import PictureConflictError
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.limits import MAX_TRANSACTION_ITEMS
from clip_classifier.storage.item_codec import ScanPage, UnreadableItem
from clip_classifier.storage.result_item import ClassificationItem
from clip_classifier.storage.results_table import TOMBSTONE_SECONDS, ReviewPage
from clip_classifier.storage.review_queue import OPEN, needs_review, review_state


def _same_label(stored: ClassificationItem, read: ClassificationItem) -> bool:
    if read.person_label is None:
        return stored.person_label is None
    return stored.person_label == read.person_label and stored.labeled_at == read.labeled_at


class InMemoryResultStore:
    def __init__(self) -> None:
        self.items: dict[str, ClassificationItem] = {}
        #: Ids whose items read back as damaged (a scan lists them as unreadable).
        self.unreadable: set[str] = set()
        #: Every write attempt: (method, pictureId, written).
        self.writes: list[tuple[str, str, bool]] = []

    def _write(self, method: str, record: ClassificationItem, allowed: bool) -> bool:
        if allowed:
            self.items[record.picture_id] = record.model_copy(deep=True)
        self.writes.append((method, record.picture_id, allowed))
        return allowed

    # "attribute_not_exists(pictureId) OR attribute_not_exists(#seq) OR #seq < :seq"
    def put_if_newer(self, record: ClassificationItem) -> bool:
        if record.sequencer is None:
            raise ValueError("put_if_newer needs a record with a sequencer")
        if record.status == "deleted":
            record = record.model_copy(update={"expires_at": int(time.time()) + TOMBSTONE_SECONDS})
        old = self.items.get(record.picture_id)
        allowed = old is None or old.sequencer is None or old.sequencer < record.sequencer
        return self._write("put_if_newer", record, allowed)

    # BACKFILL_REFRESH_CONDITION / BACKFILL_WRITE_CONDITION
    def put_backfill(self, record: ClassificationItem) -> bool:
        if record.source.type != "s3" or not record.source.last_modified:
            raise ValueError("put_backfill needs an S3 record with lastModified")
        old = self.items.get(record.picture_id)
        if record.sequencer is not None:
            allowed = old is not None and old.sequencer == record.sequencer and old.status == "classified"
        else:
            allowed = old is None or (
                old.sequencer is None
                and (
                    old.source.type == "api"
                    or (
                        old.source.last_modified is not None
                        and old.source.last_modified <= record.source.last_modified
                    )
                )
            )
        return self._write("put_backfill", record, allowed)

    # RESCORE_CONDITION, the same object version and ETag, and the person label read with it
    def update_result(
        self,
        previous: ClassificationItem,
        result: ResultFields,
        *,
        updated_at: str,
        review_sample_rate: float = 0.0,
    ) -> bool:
        if previous.source.type != "s3":
            raise ValueError("update_result re-scores an upload's result")
        old = self.items.get(previous.picture_id)
        allowed = (
            old is not None
            and old.status == "classified"
            and old.head_version != result.head_version
            and old.source.version_id == previous.source.version_id
            and old.source.etag == previous.source.etag
            and _same_label(old, previous)
        )
        if not allowed or old is None:
            self.writes.append(("update_result", previous.picture_id, False))
            return False
        queue, order = review_state(
            previous.picture_id,
            result,
            labelled=previous.person_label is not None,
            sample_rate=review_sample_rate,
        )
        updated = old.model_copy(
            update={**dict(result), "updated_at": updated_at, "review_margin": order, "review_queue": queue}
        )
        return self._write("update_result", updated, True)

    # Query ReviewQueue: reviewQueue = open, by reviewMargin ascending (then pictureId, as DynamoDB orders ties
    # by the table key only within a page; the tests use distinct margins)
    def review_page(self, *, limit: int, start_key: dict[str, Any] | None = None) -> ReviewPage:
        queued = sorted(
            (i for i in self.items.values() if i.review_queue == OPEN and i.review_margin is not None),
            key=lambda i: (i.review_margin or 0.0, i.picture_id),
        )
        if start_key:
            after = (float(start_key["reviewMargin"]["N"]), start_key["pictureId"]["S"])
            queued = [i for i in queued if (i.review_margin or 0.0, i.picture_id) > after]
        page = queued[:limit]
        next_key = None
        if len(queued) > limit and page:
            last = page[-1]
            next_key = {
                "pictureId": {"S": last.picture_id},
                "reviewQueue": {"S": OPEN},
                "reviewMargin": {"N": str(last.review_margin)},
            }
        return ReviewPage(next_key=next_key, scanned=len(page), items=[i.model_copy(deep=True) for i in page])

    # SET personLabel, labeledBy, labeledAt REMOVE reviewQueue, if a classified item exists (ALL_NEW)
    def set_label(self, picture_id: str, label: str, *, by: str, at: str) -> ClassificationItem | None:
        old = self.items.get(picture_id)
        if old is None or old.status != "classified":
            self.writes.append(("set_label", picture_id, False))
            return None
        updated = old.model_copy(
            update={"person_label": label, "labeled_by": by, "labeled_at": at, "review_queue": None}
        )
        self._write("set_label", updated, True)
        return updated.model_copy(deep=True)

    # REMOVE the label (SET reviewQueue if it still needs a person), if the label is the one read
    def clear_label(self, item: ClassificationItem, *, review_sample_rate: float = 0.0) -> bool:
        old = self.items.get(item.picture_id)
        if item.person_label is None or old is None or not _same_label(old, item):
            self.writes.append(("clear_label", item.picture_id, False))
            return False
        queued = needs_review(item.picture_id, item.ambiguous, labelled=False, sample_rate=review_sample_rate)
        updated = old.model_copy(
            update={
                "person_label": None,
                "labeled_by": None,
                "labeled_at": None,
                "review_queue": OPEN if queued else None,
            }
        )
        return self._write("clear_label", updated, True)

    def put_api_results(self, records: Sequence[ClassificationItem]) -> None:
        if len(records) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"at most {MAX_TRANSACTION_ITEMS} records per call, got {len(records)}")
        for record in records:
            old = self.items.get(record.picture_id)
            if old is not None and old.source.type != "api":
                raise PictureConflictError(
                    f"pictureId '{record.picture_id}' belongs to an uploaded image; API results cannot replace it",
                    field="pictureId",
                    picture_id=record.picture_id,
                )
        for record in records:
            self._write("put_api_results", record, True)

    def get(self, picture_id: str) -> ClassificationItem | None:
        item = self.items.get(picture_id)
        return item.model_copy(deep=True) if item is not None else None

    def get_many(self, picture_ids: Sequence[str]) -> dict[str, ClassificationItem]:
        return {i: item for i in dict.fromkeys(picture_ids) if (item := self.get(i)) is not None}

    def scan_segment(
        self,
        segment: int,
        total_segments: int,
        *,
        start_key: dict[str, Any] | None,
        limit: int = 500,
        attributes: Sequence[str] = (),
    ) -> ScanPage:
        """Items whose id hashes to ``segment``, in id order, ``limit`` per page; ``self.unreadable`` ids
        come back as unreadable items, as a damaged item would."""
        mine = sorted(
            i
            for i in self.items
            if int(hashlib.sha256(i.encode()).hexdigest(), 16) % total_segments == segment
        )
        after = start_key["pictureId"]["S"] if start_key else None
        remaining = [i for i in mine if after is None or i > after]
        page = remaining[:limit]
        more = len(remaining) > limit
        result = ScanPage(next_key={"pictureId": {"S": page[-1]}} if more else None)
        for i in page:
            if i in self.unreadable:
                source = self.items[i].source
                result.unreadable.append(UnreadableItem(i, source.bucket, source.key, "damaged"))
            else:
                result.items.append(self.items[i].model_copy(deep=True))
        return result

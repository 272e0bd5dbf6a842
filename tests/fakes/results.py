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
from clip_classifier.storage.results_table import TOMBSTONE_SECONDS


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

    # RESCORE_CONDITION and the same object version and ETag
    def update_result(self, previous: ClassificationItem, result: ResultFields, *, updated_at: str) -> bool:
        if previous.source.type != "s3":
            raise ValueError("update_result re-scores an upload's result")
        old = self.items.get(previous.picture_id)
        allowed = (
            old is not None
            and old.status == "classified"
            and old.head_version != result.head_version
            and old.source.version_id == previous.source.version_id
            and old.source.etag == previous.source.etag
        )
        if not allowed or old is None:
            self.writes.append(("update_result", previous.picture_id, False))
            return False
        updated = old.model_copy(update={**dict(result), "updated_at": updated_at})
        return self._write("update_result", updated, True)

    # API_WRITE_CONDITION, all or nothing
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

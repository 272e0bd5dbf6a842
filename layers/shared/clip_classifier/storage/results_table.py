"""The results table: the DynamoDB adapter for :class:`ClassificationItem` items (keyed by ``pictureId``).

Items cross the boundary through :mod:`.item_codec`. Every write is conditional: writes that come from S3
events on the event ``sequencer`` (a duplicate or older event never overwrites a newer result), API results
never over an upload's, the backfill and the rescore by their own ordering rules (each method says which).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from clip_classifier.aws import AWS_ERRORS, ErrorFamily, aws_error, error_code
from clip_classifier.exceptions import PictureConflictError, ResultsStoreError, TransientResultsStoreError
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.limits import MAX_BATCH_GET_KEYS, MAX_TRANSACTION_ITEMS
from clip_classifier.storage.item_codec import (
    ScanPage,
    UnreadableItem,
    deserialize,
    serialize,
    stored_result,
    to_attribute_value,
)
from clip_classifier.storage.result_item import ClassificationItem
from clip_classifier.storage.review_queue import INDEX_NAME, OPEN, needs_review, review_state

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)


def vars_of(unreadable: UnreadableItem) -> dict[str, object]:
    return dataclasses.asdict(unreadable)


_ERRORS = ErrorFamily(other=ResultsStoreError, transient=TransientResultsStoreError)

#: See :meth:`ResultsStore.put_api_results`: an API result replaces nothing but an API result.
API_WRITE_CONDITION = "attribute_not_exists(pictureId) OR #source.#type = :api"
#: See :meth:`ResultsStore.put_backfill`: a new result, or one replacing an API or older backfill result.
BACKFILL_WRITE_CONDITION = (
    "attribute_not_exists(pictureId) OR (attribute_not_exists(#seq) AND "
    "(#source.#type = :api OR #source.#modified <= :modified))"
)
#: ... or a refresh of an S3 event's result in place: only while no later event has written.
BACKFILL_REFRESH_CONDITION = "#seq = :seq AND #status = :classified"
#: See :meth:`ResultsStore.update_result` (which adds: the same object version and ETag).
RESCORE_CONDITION = "#status = :classified AND #head <> :head"

#: Keep deletion markers this long so late, out-of-order creates for a deleted key are still recognised.
TOMBSTONE_SECONDS = 30 * 24 * 3600


def _label_unchanged(item: ClassificationItem, names: dict[str, str], values: dict[str, Any]) -> str:
    """The condition that the stored person label is still the one ``item`` was read with (or none)."""
    names["#label"] = "personLabel"
    if item.person_label is None:
        return "attribute_not_exists(#label)"
    names["#labeledAt"] = "labeledAt"
    values[":readLabel"] = {"S": item.person_label}
    values[":readLabeledAt"] = {"S": item.labeled_at or ""}
    return "#label = :readLabel AND #labeledAt = :readLabeledAt"


def _read_items(
    raw_items: Sequence[dict[str, Any]], items: list[ClassificationItem], unreadable: list[UnreadableItem]
) -> None:
    """A page's raw items into ``items``, and those that are not items (never fatal) into ``unreadable``."""
    for raw in raw_items:
        try:
            items.append(deserialize(raw))
        except (ValidationError, TypeError, ValueError) as exc:
            unreadable.append(UnreadableItem.of(raw, exc))


@dataclasses.dataclass(slots=True)
class ReviewPage:
    """One page of the review queue and where to continue (``None``: the end); what it cost to read."""

    next_key: dict[str, Any] | None
    scanned: int = 0
    consumed_units: float = 0.0
    items: list[ClassificationItem] = dataclasses.field(default_factory=list)
    unreadable: list[UnreadableItem] = dataclasses.field(default_factory=list)


class ResultsStore:
    """Reads and writes classification results. Accepts an injected low-level DynamoDB client."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self.client = client

    def put_if_newer(self, record: ClassificationItem) -> bool:
        """Write unless the table already holds a result from the same or a later S3 event.

        Returns ``False`` when the write was skipped as a duplicate or out-of-order delivery.
        """
        if record.sequencer is None:
            raise ValueError("put_if_newer needs a record with a sequencer")
        if record.status == "deleted":
            record = record.model_copy(update={"expires_at": int(time.time()) + TOMBSTONE_SECONDS})
        return self._put_if(
            record,
            "attribute_not_exists(pictureId) OR attribute_not_exists(#seq) OR #seq < :seq",
            {"#seq": "sequencer"},
            {":seq": {"S": record.sequencer}},
        )

    def _put_if(
        self, record: ClassificationItem, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """A conditional put: ``False`` when the condition refused it, errors mapped otherwise."""
        return self._conditional(
            self.client.put_item,
            Item=serialize(record),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _conditional(self, write: Callable[..., Any], **request: Any) -> bool:
        """One conditional write (``put_item`` or ``update_item``): ``False`` when its condition refused it."""
        try:
            write(TableName=self.table_name, **request)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise self._error(exc, "write") from exc
        return True

    def put_api_results(self, records: Sequence[ClassificationItem]) -> None:
        """Store API results all or nothing, without ever replacing what an upload wrote.

        Uploads and the API share the ``pictureId`` namespace, and uploads own theirs: an API result may
        create an item or replace an earlier API result, never an item an upload wrote (an S3 event's
        result, failure or deletion marker, or a backfill's result), so a deleted image cannot come back
        through the API and the sequencer guard of later S3 events stays intact. One record is a
        conditional put; several are one transaction (at most :data:`MAX_TRANSACTION_ITEMS`), so an
        error stores none of them. A refused record raises :class:`PictureConflictError`.
        """
        if not records:
            return
        if len(records) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"at most {MAX_TRANSACTION_ITEMS} records per call, got {len(records)}")
        puts: list[Any] = [
            {
                "TableName": self.table_name,
                "Item": serialize(r),
                "ConditionExpression": API_WRITE_CONDITION,
                "ExpressionAttributeNames": {"#source": "source", "#type": "type"},
                "ExpressionAttributeValues": {":api": {"S": "api"}},
            }
            for r in records
        ]
        try:
            if len(puts) == 1:
                self.client.put_item(**puts[0])
            else:
                self.client.transact_write_items(TransactItems=[{"Put": put} for put in puts])
        except AWS_ERRORS as exc:
            refused = self._refused(exc, len(records))
            if refused is not None:
                picture_id = records[refused].picture_id
                raise PictureConflictError(
                    f"pictureId '{picture_id}' belongs to an uploaded image; API results cannot replace it",
                    field="pictureId",
                    picture_id=picture_id,
                ) from exc
            raise self._error(exc, "write") from exc

    def put_backfill(self, record: ClassificationItem) -> bool:
        """Write a backfill's result unless something newer holds the ``pictureId``; ``False`` if refused.

        A backfill has no S3 event, so no sequencer of its own. It never replaces an item an S3 event wrote
        (every such item carries the event's sequencer; the event path is the authority for a key it has
        seen), except to refresh that event's own object version in place: then ``record`` carries the
        item's sequencer and is written only while the item still has it (no later event has written).
        Otherwise it creates the item or replaces an API result or an older backfill result: among backfill
        results the object version modified last wins (``source.lastModified``, ISO-8601 UTC, so string order
        is time order).
        """
        if record.source.type != "s3" or not record.source.last_modified:
            raise ValueError("put_backfill needs an S3 record with lastModified")
        names = {"#seq": "sequencer"}
        values: dict[str, Any]
        if record.sequencer is not None:
            condition = BACKFILL_REFRESH_CONDITION
            names["#status"] = "status"
            values = {":seq": {"S": record.sequencer}, ":classified": {"S": "classified"}}
        else:
            condition = BACKFILL_WRITE_CONDITION
            names.update({"#source": "source", "#type": "type", "#modified": "lastModified"})
            values = {":api": {"S": "api"}, ":modified": {"S": record.source.last_modified}}
        return self._put_if(record, condition, names, values)

    def update_result(
        self,
        previous: ClassificationItem,
        result: ResultFields,
        *,
        updated_at: str,
        review_sample_rate: float = 0.0,
    ) -> bool:
        """Set ``result`` (a new head's) on the item ``previous`` was read from, only while the stored item is
        still that classified result of the same object version under another head, with the person's label
        (or none) read with it. ``False`` when it changed meanwhile (a newer upload, a deletion, a label, or
        already re-scored). Everything else of the item — the embedding, the source, the person's label, the
        S3 sequencer that orders later events — stays as it is; the review queue follows the new result."""
        if previous.source.type != "s3":
            raise ValueError("update_result re-scores an upload's result")
        fields: dict[str, Any] = stored_result(result.model_dump(by_alias=True))
        fields["reviewQueue"], fields["reviewMargin"] = review_state(
            previous.picture_id,
            result,
            labelled=previous.person_label is not None,
            sample_rate=review_sample_rate,
        )
        names = {"#status": "status", "#head": "headVersion", "#source": "source", "#updated": "updatedAt"}
        values: dict[str, Any] = {
            ":classified": {"S": "classified"},
            ":head": {"S": result.head_version},
            ":updated": {"S": updated_at},
        }
        assignments, removals = ["#updated = :updated"], []
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            if value is None:
                removals.append(f"#f{index}")  # e.g. no ambiguity guard in the new head
            else:
                values[f":f{index}"] = to_attribute_value(value)
                assignments.append(f"#f{index} = :f{index}")
        condition = [RESCORE_CONDITION]
        for alias, attribute, value in (
            ("#version", "versionId", previous.source.version_id),
            ("#etag", "etag", previous.source.etag),
        ):
            names[alias] = attribute
            if value is None:
                condition.append(f"attribute_not_exists(#source.{alias})")
            else:
                values[f":{attribute}"] = {"S": value}
                condition.append(f"#source.{alias} = :{attribute}")
        condition.append(_label_unchanged(previous, names, values))
        update = "SET " + ", ".join(assignments) + (" REMOVE " + ", ".join(removals) if removals else "")
        return self._conditional(
            self.client.update_item,
            Key={"pictureId": {"S": previous.picture_id}},
            UpdateExpression=update,
            ConditionExpression=" AND ".join(condition),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def review_page(self, *, limit: int, start_key: dict[str, Any] | None = None) -> ReviewPage:
        """One page of the review queue, most uncertain first: a Query of the sparse ``ReviewQueue`` index,
        which reads only the items it returns, however large the table."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": INDEX_NAME,
            "KeyConditionExpression": "#queue = :open",
            "ExpressionAttributeNames": {"#queue": "reviewQueue"},
            "ExpressionAttributeValues": {":open": {"S": OPEN}},
            "ScanIndexForward": True,
            "Limit": limit,
            "ReturnConsumedCapacity": "TOTAL",
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            response = self.client.query(**kwargs)
        except AWS_ERRORS as exc:
            raise self._error(exc, "read") from exc
        page = ReviewPage(
            next_key=response.get("LastEvaluatedKey") or None,
            scanned=int(response.get("ScannedCount", 0)),
            consumed_units=float((response.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0)),
        )
        _read_items(response.get("Items", []), page.items, page.unreadable)
        return page

    def set_label(self, picture_id: str, label: str, *, by: str, at: str) -> ClassificationItem | None:
        """Record a person's label beside the machine's result, and take the item out of the review queue.
        One conditional write: the item must be a classified result; two reviewers racing leave the one
        item with one label, who and when together. The item as written (the write returns it: no second
        read), or ``None`` when there is no such result."""
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key={"pictureId": {"S": picture_id}},
                UpdateExpression="SET #label = :label, #by = :by, #at = :at REMOVE #queue",
                ConditionExpression="attribute_exists(pictureId) AND #status = :classified",
                ExpressionAttributeNames={
                    "#label": "personLabel",
                    "#by": "labeledBy",
                    "#at": "labeledAt",
                    "#queue": "reviewQueue",
                    "#status": "status",
                },
                ExpressionAttributeValues={
                    ":label": {"S": label},
                    ":by": {"S": by},
                    ":at": {"S": at},
                    ":classified": {"S": "classified"},
                },
                ReturnValues="ALL_NEW",
            )
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise self._error(exc, "write") from exc
        return deserialize(response["Attributes"])

    def clear_label(self, item: ClassificationItem, *, review_sample_rate: float = 0.0) -> bool:
        """Withdraw the person's label ``item`` was read with; the result goes back to the queue if it still
        needs a person. ``False`` when the label changed meanwhile (another reviewer) or there is none."""
        if item.person_label is None:
            return False
        names: dict[str, str] = {"#by": "labeledBy", "#at": "labeledAt", "#queue": "reviewQueue"}
        values: dict[str, Any] = {}
        condition = _label_unchanged(item, names, values)
        if needs_review(item.picture_id, item.ambiguous, labelled=False, sample_rate=review_sample_rate):
            update = "SET #queue = :open REMOVE #label, #by, #at"
            values[":open"] = {"S": OPEN}
        else:
            update = "REMOVE #label, #by, #at, #queue"
        return self._conditional(
            self.client.update_item,
            Key={"pictureId": {"S": item.picture_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def get_many(self, picture_ids: Sequence[str]) -> dict[str, ClassificationItem]:
        """The stored items of ``picture_ids`` (strongly consistent), by ``pictureId``; absent ids, and items
        that cannot be read, are left out."""
        wanted = list(dict.fromkeys(picture_ids))
        found: dict[str, ClassificationItem] = {}
        for start in range(0, len(wanted), MAX_BATCH_GET_KEYS):
            keys: list[Any] = [{"pictureId": {"S": i}} for i in wanted[start : start + MAX_BATCH_GET_KEYS]]
            request: Any = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(8):
                try:
                    response = self.client.batch_get_item(RequestItems=request)
                except AWS_ERRORS as exc:
                    raise self._error(exc, "read") from exc
                for item in response.get("Responses", {}).get(self.table_name, []):
                    try:
                        record = deserialize(item)
                    except (ValidationError, TypeError, ValueError) as exc:
                        # Not an item this code wrote: treated as absent, so a backfill may write a fresh
                        # result (its condition still guards an S3 event's sequencer).
                        logger.warning("unreadable item skipped", extra=vars_of(UnreadableItem.of(item, exc)))
                        continue
                    found[record.picture_id] = record
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))  # throttled keys come back unprocessed
            else:
                raise TransientResultsStoreError(
                    f"results table {self.table_name} kept keys unprocessed; retry the batch"
                )
        return found

    def scan_segment(
        self,
        segment: int,
        total_segments: int,
        *,
        start_key: dict[str, Any] | None,
        limit: int = 500,
        attributes: Sequence[str] = (),
    ) -> ScanPage:
        """One page of a parallel scan: the items (only ``attributes``, when named), the ones that cannot be
        read as items (listed, never fatal: one damaged item must not stop a segment), and the key to
        continue from (``None`` at the end)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Segment": segment,
            "TotalSegments": total_segments,
            "Limit": limit,
        }
        if attributes:
            kwargs["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(attributes)))
            kwargs["ExpressionAttributeNames"] = {f"#p{i}": name for i, name in enumerate(attributes)}
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            response = self.client.scan(**kwargs)
        except AWS_ERRORS as exc:
            raise self._error(exc, "read") from exc
        page = ScanPage(next_key=response.get("LastEvaluatedKey") or None)
        _read_items(response.get("Items", []), page.items, page.unreadable)
        return page

    @staticmethod
    def _refused(exc: BaseException, count: int) -> int | None:
        """The index of the record whose condition failed, if that is why the write failed."""
        code = error_code(exc)
        if code == "ConditionalCheckFailedException":
            return 0
        if code == "TransactionCanceledException" and isinstance(exc, ClientError):
            reasons = exc.response.get("CancellationReasons") or []
            for index, reason in enumerate(reasons[:count]):
                if reason.get("Code") == "ConditionalCheckFailed":
                    return index
        return None

    def get(self, picture_id: str) -> ClassificationItem | None:
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key={"pictureId": {"S": picture_id}}, ConsistentRead=True
            )
        except AWS_ERRORS as exc:
            raise self._error(exc, "read") from exc
        item = response.get("Item")
        return deserialize(item) if item else None

    def _error(self, exc: BaseException, action: str) -> ResultsStoreError:
        error = aws_error(exc, _ERRORS, action=action, target=f"results table {self.table_name}")
        assert isinstance(error, ResultsStoreError)
        return error

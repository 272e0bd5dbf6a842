"""Backfill: classify objects that were in the bucket before the stack's notifications saw them.

The backfill state machine (``infra/statemachines/backfill.asl.json``) lists the bucket under the upload
prefix (or reads an S3 Inventory manifest) and hands batches of keys to the batch function, which calls
:meth:`BackfillService.run` once per batch. Each key goes through the upload path's own pipeline
(:meth:`~.upload_classifier.UploadClassifier.classify_object`) and is stored with the backfill's ordering rule
(:meth:`~.results_store.ResultsStore.put_backfill`):

* a key already holding a result for its current object version under the current head and model (with
  its embedding, when embeddings are kept), or a failure for that version, is skipped without a download:
  a second run embeds nothing;
* an item an S3 event wrote (it carries the event's sequencer) for another version, or a deletion
  marker, is never replaced: the event path is the authority for every key it has seen. The event's own
  version may be refreshed (a new head or model, or an embedding kept since) — in place, keeping the
  event's sequencer, and only if no event has written since it was read;
* an object version modified after the run started (in its first second or later: S3 reports seconds) is
  left to its own S3 event;
* among backfill results, the object version modified last wins.

Per-key outcomes go back to the state machine (and its ResultWriter). A transient AWS error fails the
batch after every key was tried, so Step Functions retries it; the keys already stored are then skipped.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from clip_classifier.exceptions import ClassifierError, InvocationTimeoutError
from clip_classifier.ingest.objects import CurrentVersion, ObjectRef
from clip_classifier.jobs.upload import UploadClassifier
from clip_classifier.ports import ObjectSource, ResultSink
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

#: The most keys one child execution may hand over (the state machine's batch size is a parameter, 25).
MAX_BATCH_KEYS = 1000

KeyOutcomeStatus = Literal["classified", "failed", "skipped", "superseded", "missing", "ignored"]


class ListedObject(BaseModel):
    """One key of the map's items: an ``s3:listObjectsV2`` entry (``Key``, ``Etag``, ``LastModified``,
    ``Size``) or an S3 Inventory row (``Bucket``, ``Key`` URL-encoded, ``Size``, ``LastModifiedDate``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str = Field(alias="Key", min_length=1, max_length=3000)
    bucket: str | None = Field(default=None, alias="Bucket")


class BatchInput(BaseModel):
    """What the state machine adds to every batch (``ItemBatcher.BatchInput``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: ``listing`` keys are plain; ``manifest`` (S3 Inventory CSV) keys are URL-encoded.
    source: Literal["listing", "manifest"]
    #: The listed bucket (listing items do not name it).
    bucket: str = Field(min_length=3)
    #: The execution's start time (``$$.Execution.StartTime``): object versions modified later have their
    #: own S3 events, which classify them.
    started_at: str = Field(alias="startedAt", min_length=20)


class BackfillBatch(BaseModel):
    """The batch function's event: one child execution of the Distributed Map."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[ListedObject] = Field(alias="Items", min_length=1, max_length=MAX_BATCH_KEYS)
    batch_input: BatchInput = Field(alias="BatchInput")


class KeyOutcome(BaseModel):
    key: str
    picture_id: str = Field(serialization_alias="pictureId")
    outcome: KeyOutcomeStatus
    code: str | None = None
    #: The object version looked at (classified, failed, skipped or superseded).
    version_id: str | None = Field(default=None, serialization_alias="versionId")


class BatchResult(BaseModel):
    counts: dict[str, int]
    items: list[KeyOutcome]


def _same_version(item: ClassificationItem, current: CurrentVersion) -> bool:
    return item.source.version_id == current.version_id and item.source.etag == current.etag


class BackfillService:
    """Runs the upload function's pipeline (its source, store, head and embedder) over listed keys."""

    def __init__(self, classifier: UploadClassifier) -> None:
        self.classifier = classifier
        self.source: ObjectSource = classifier.source
        self.store: ResultSink = classifier.store

    def run(self, batch: BackfillBatch, deadline: float | None = None) -> BatchResult:
        info = batch.batch_input
        head = self.classifier.weights.get()
        outcomes: list[KeyOutcome] = []
        todo: list[tuple[str, str]] = []
        seen: set[str] = set()
        for listed in batch.items:
            key = unquote_plus(listed.key) if info.source == "manifest" else listed.key
            if key in seen:  # listed twice (a manifest can): embedded once, reported once
                continue
            seen.add(key)
            picture_id = picture_id_for_key(key, self.classifier.key_prefix)
            if listed.bucket not in (None, info.bucket) or (
                self.classifier.bucket and info.bucket != self.classifier.bucket
            ):
                outcomes.append(
                    KeyOutcome(key=key, picture_id=picture_id, outcome="ignored", code="other_bucket")
                )
            elif self.classifier.key_prefix and not key.startswith(self.classifier.key_prefix):
                outcomes.append(
                    KeyOutcome(key=key, picture_id=picture_id, outcome="ignored", code="outside_prefix")
                )
            elif not self.classifier.wanted(key):
                outcomes.append(KeyOutcome(key=key, picture_id=picture_id, outcome="ignored", code="suffix"))
            else:
                todo.append((key, picture_id))
        stored = self.store.get_many([picture_id for _, picture_id in todo])
        retry: ClassifierError | None = None
        for key, picture_id in todo:
            try:
                outcomes.append(
                    self._one(info, key, picture_id, stored.get(picture_id), head.version, deadline)
                )
            except ClassifierError as exc:
                if not exc.transient:
                    raise  # configuration: no retry can help, fail the child now
                retry = retry or exc
        if retry is not None:
            raise retry
        return BatchResult(counts=dict(Counter(o.outcome for o in outcomes)), items=outcomes)

    def _one(
        self,
        info: BatchInput,
        key: str,
        picture_id: str,
        existing: ClassificationItem | None,
        head_version: str,
        deadline: float | None,
    ) -> KeyOutcome:
        if deadline is not None and time.monotonic() > deadline:
            raise InvocationTimeoutError("no time left in the invocation for the batch's next key; retried")
        current = self.source.current(info.bucket, key)
        if current is None:
            return KeyOutcome(key=key, picture_id=picture_id, outcome="missing", code="not_found")

        version = current.version_id

        def outcome(status: KeyOutcomeStatus, code: str | None = None) -> KeyOutcome:
            return KeyOutcome(key=key, picture_id=picture_id, outcome=status, code=code, version_id=version)

        # S3 reports LastModified to the second: a version from the run's first second counts as after it.
        if current.last_modified is not None and current.last_modified[:19] >= info.started_at[:19]:
            return outcome("skipped", "after_start")
        refresh: str | None = None
        if existing is not None:
            same = existing.source.type == "s3" and _same_version(existing, current)
            if same and (existing.status == "failed" or self._up_to_date(existing, head_version)):
                return outcome("skipped", "current")
            if existing.sequencer is not None:
                if not (same and existing.status == "classified"):
                    return outcome("skipped", "event_owned")
                # The S3 event's own version, classified before its embedding was kept or under another
                # head or model: refreshed in place, keeping the event's sequencer as the ordering guard.
                refresh = existing.sequencer
        source = SourceInfo(
            type="s3",
            bucket=info.bucket,
            key=key,
            etag=current.etag,
            version_id=current.version_id,
            size=current.size,
            event_time=existing.source.event_time if refresh and existing else None,
        )
        record, _ = self.classifier.classify_object(
            ObjectRef(info.bucket, key, current.version_id, current.etag),
            picture_id,
            source,
            sequencer=refresh,
            deadline=deadline,
        )
        if record is not None and refresh and existing is not None:
            record = record.model_copy(update={"created_at": existing.created_at})
        if record is not None and existing is not None and _same_version(existing, current):
            record = record.with_label_of(existing)  # the same image: a person's label survives
        if record is None or not self.store.put_backfill(record):
            return outcome("superseded")
        return outcome("failed", record.error.code) if record.error else outcome("classified")

    def _up_to_date(self, item: ClassificationItem, head_version: str) -> bool:
        """A result a run would only reproduce: same head, same embedder, embedding kept if wanted."""
        return (
            item.status == "classified"
            and item.head_version == head_version
            and item.embedder_version == self.classifier.embedder.version
            and (item.embedding is not None or not self.classifier.store_embeddings)
        )

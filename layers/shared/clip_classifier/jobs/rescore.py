"""Rescore: apply the current head to every stored embedding, without touching an image.

The rescore state machine (``infra/statemachines/rescore.asl.json``) splits the table into parallel scan
segments; each child invokes the rescore function with its segment until the segment is done, every call
continuing from the previous one's ``startKey``. Per item:

* a classified upload result under another head, with an embedding from the deployed model, is scored again
  from that embedding (:func:`~clip_classifier.storage.embedding_codec.head_input`, as the upload path scored it) and replaced —
  only while it is still the same object version's classified result under another head
  (:meth:`~clip_classifier.storage.results_table.ResultsStore.update_result`), so a newer upload or a deletion always wins;
* one without an embedding, with one from another model, or with a damaged one is never scored: it is listed
  for a backfill, which re-classifies it from its image. The lists are gzipped CSV files in the S3 Inventory
  layout, and the run's last step writes their ``manifest.json``: the backfill state machine reads it as it
  reads an S3 Inventory manifest;
* API results (the client's features are not kept), failures and deletion markers are left as they are;
* an item that cannot be read as one (damaged, or written by hand) is counted as ``unreadable``, named in the
  segment's output and, when its S3 key is known, listed for the backfill too: it never stops its segment.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clip_classifier.exceptions import CorruptEmbeddingError
from clip_classifier.head.forward import Head
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.ports import BackfillListSink, HeadProvider, ResultScan
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, utc_now

RescoreStatus = Literal[
    "rescored", "superseded", "current", "api", "failed", "deleted", "no_embedding", "embedder_changed",
    "corrupt_embedding", "unreadable",
]  # fmt: skip
#: How many unreadable items a segment's output names (all are counted; the state machine's payloads are
#: bounded, so the names are a sample).
MAX_NAMED_UNREADABLE = 20
#: The statuses whose items are listed for a backfill.
LISTED: frozenset[str] = frozenset({"no_embedding", "embedder_changed", "corrupt_embedding"})
#: What a rescore reads of an item: what it decides on, not the old result (the pages it scans stay small;
#: DynamoDB bills a scan by the items' full size either way).
READ_ATTRIBUTES = (
    "pictureId",
    "status",
    "headVersion",
    "embedderVersion",
    "embedding",
    "source",
    "createdAt",
    # The person's label and when: the update keeps it, and is refused if it changed meanwhile.
    "personLabel",
    "labeledAt",
)

#: An execution name (the state machine passes ``$$.Execution.Name``): safe in an S3 key.
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,80}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RescoreRequest(_Request):
    """One call of a segment's loop (the state machine passes the previous call's output back in)."""

    run_id: str = Field(alias="runId", pattern=RUN_ID_PATTERN)
    segment: int = Field(ge=0)
    total_segments: int = Field(alias="totalSegments", ge=1, le=1_000_000)
    #: Where the previous call stopped (DynamoDB's LastEvaluatedKey); ``None`` to start the segment.
    start_key: dict[str, Any] | None = Field(default=None, alias="startKey")
    #: Counts so far for this segment, by status.
    totals: dict[str, int] = Field(default_factory=dict)
    #: The next backfill-list file number of this segment.
    part: int = Field(default=0, ge=0)
    #: pictureIds of items that could not be read (at most :data:`MAX_NAMED_UNREADABLE`).
    unreadable: list[str] = Field(default_factory=list, max_length=MAX_NAMED_UNREADABLE)
    #: The previous call's answer, passed back with the rest of its output (the loop runs while false).
    done: bool = False

    @model_validator(mode="after")
    def _segment_in_range(self) -> RescoreRequest:
        if self.segment >= self.total_segments:
            raise ValueError(f"segment {self.segment} is not below totalSegments {self.total_segments}")
        return self


class RescoreProgress(RescoreRequest):
    """What a call returns, and the next call's input: ``done`` once the segment's last page was scored."""


class ManifestRequest(_Request):
    """The run's last step: the manifest of the backfill lists its segments wrote."""

    action: Literal["manifest"]
    run_id: str = Field(alias="runId", pattern=RUN_ID_PATTERN)


class RescoreService:
    def __init__(
        self,
        store: ResultScan,
        weights: HeadProvider,
        lists: BackfillListSink,
        *,
        embedder_version: str,
        page_size: int = 100,
        review_sample_rate: float = 0.0,
    ) -> None:
        self.store = store
        self.weights = weights
        self.lists = lists
        self.embedder_version = embedder_version
        #: The share of confident results kept in the review queue (``ReviewSampleRate``, as uploads do).
        self.review_sample_rate = review_sample_rate
        self.page_size = page_size

    def run(self, request: RescoreRequest, deadline: float | None = None) -> RescoreProgress:
        """Score pages of the segment until it ends or ``deadline`` (``time.monotonic()``) passes."""
        head = self.weights.get()  # checked against the deployed embedder where it was loaded
        totals: Counter[str] = Counter(request.totals)
        listed: list[tuple[str, str]] = []
        unreadable_ids = list(request.unreadable)
        start_key = request.start_key
        while True:
            page = self.store.scan_segment(
                request.segment,
                request.total_segments,
                start_key=start_key,
                limit=self.page_size,
                attributes=READ_ATTRIBUTES,
            )
            start_key = page.next_key
            for item in page.items:
                status = self.rescore(item, head)
                totals[status] += 1
                if status in LISTED and item.source.bucket and item.source.key:
                    listed.append((item.source.bucket, item.source.key))
            for unreadable in page.unreadable:
                # Counted and named, never fatal; with its key known, the backfill classifies it afresh.
                totals["unreadable"] += 1
                if len(unreadable_ids) < MAX_NAMED_UNREADABLE:
                    unreadable_ids.append(unreadable.picture_id)
                if unreadable.bucket and unreadable.key:
                    listed.append((unreadable.bucket, unreadable.key))
            if start_key is None or (deadline is not None and time.monotonic() > deadline):
                break
        part = request.part
        if listed:
            self.lists.write(request.run_id, request.segment, part, listed)
            part += 1
        return RescoreProgress(
            runId=request.run_id,
            segment=request.segment,
            totalSegments=request.total_segments,
            startKey=start_key,
            totals=dict(totals),
            part=part,
            unreadable=unreadable_ids,
            done=start_key is None,
        )

    def rescore(self, item: ClassificationItem, head: Head) -> RescoreStatus:
        """One stored item under ``head``: what happened to it."""
        if item.source.type == "api":
            return "api"
        if item.status != "classified":
            return item.status
        if item.head_version == head.version:
            return "current"
        if item.embedding is None:
            return "no_embedding"
        if item.embedder_version != self.embedder_version:
            return "embedder_changed"
        try:
            features = embedding_codec.head_input(item.embedding, head.input_dim)
        except CorruptEmbeddingError:
            return "corrupt_embedding"
        prediction = head.predict(features)[0]
        result = ResultFields.from_prediction(prediction, head_version=head.version)
        updated = self.store.update_result(
            item, result, updated_at=utc_now(), review_sample_rate=self.review_sample_rate
        )
        return "rescored" if updated else "superseded"

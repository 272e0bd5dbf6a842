"""Shadow evaluation: a candidate head and the active head applied to every stored embedding, writing no
result (``clip-classifier heads evaluate``).

The evaluation state machine (``infra/statemachines/evaluate.asl.json``) splits the results table into
parallel scan segments on a Distributed Map, as the rescore does; each child calls :meth:`EvaluationService.segment`
until its segment is done, each call leaving its figures as a part in the reports bucket. The run's last
step (:meth:`EvaluationService.report`) merges the parts into the report and records it on the candidate's
registry record. Both heads are named by version in the execution's input, so an activation during the run
changes nothing in it.

Per item: a classified upload result with an embedding from the deployed embedder is scored by both heads;
every other item is counted under the reason it was not (``api``, ``failed``, ``deleted``,
``no_embedding``, ``embedder_changed``, ``corrupt_embedding``, ``unreadable``), never scored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from clip_classifier.exceptions import CorruptEmbeddingError
from clip_classifier.head.fit import ServedEmbedder, check_fits
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.jobs.rescore import RUN_ID_PATTERN
from clip_classifier.ports import ResultScan
from clip_classifier.registry.evaluation import EvaluationFigures, build_report
from clip_classifier.registry.records import EvaluationRef, EvaluationSummary
from clip_classifier.registry.service import HeadFiles, HeadRecords
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, utc_now

#: What an evaluation reads of an item (DynamoDB bills the scan by the items' full size either way).
READ_ATTRIBUTES = ("pictureId", "status", "embedderVersion", "embedding", "source", "personLabel")
VERSION_PATTERN = r"^[0-9a-f]{64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    run_id: str = Field(alias="runId", pattern=RUN_ID_PATTERN)
    candidate: str = Field(pattern=VERSION_PATTERN)
    active: str = Field(pattern=VERSION_PATTERN)


class SegmentRequest(_Request):
    """One call of a segment's loop (the state machine passes the previous call's output back in)."""

    action: Literal["segment"] = "segment"
    segment: int = Field(ge=0)
    total_segments: int = Field(alias="totalSegments", ge=1, le=1_000_000)
    start_key: dict[str, Any] | None = Field(default=None, alias="startKey")
    #: The next part number of this segment (one part per call).
    part: int = Field(default=0, ge=0)
    #: Items seen by this segment so far, compared or not.
    seen: int = Field(default=0, ge=0)
    done: bool = False

    @model_validator(mode="after")
    def _segment_in_range(self) -> SegmentRequest:
        if self.segment >= self.total_segments:
            raise ValueError(f"segment {self.segment} is not below totalSegments {self.total_segments}")
        return self


class ReportRequest(_Request):
    action: Literal["report"]


class EvaluationParts(Protocol):
    def put_part(self, run_id: str, segment: int, part: int, figures: EvaluationFigures) -> str: ...

    def parts(self, run_id: str) -> list[EvaluationFigures]: ...

    def put_report(self, run_id: str, report: dict[str, Any]) -> str: ...


class RegisteredHeads:
    """Heads by version, from the registry's files, each checked once against the deployed embedder and
    kept for the container's life (a version's file never changes)."""

    def __init__(self, files: HeadFiles, served: ServedEmbedder) -> None:
        self.files = files
        self.served = served
        self._heads: dict[str, Head] = {}

    def get(self, version: str) -> Head:
        head = self._heads.get(version)
        if head is None:
            location = f"registered head {version[:12]}"
            head = Head(parse_weights(self.files.get_head(version), location=location))
            check_fits(head.input_dim, head.embedders, self.served, location=location)
            self._heads[version] = head
        return head


class EvaluationService:
    def __init__(
        self,
        store: ResultScan,
        heads: RegisteredHeads,
        parts: EvaluationParts,
        records: HeadRecords,
        *,
        page_size: int = 500,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self.store = store
        self.heads = heads
        self.parts = parts
        self.records = records
        self.page_size = page_size
        self.clock = clock

    @property
    def embedder_version(self) -> str:
        return self.heads.served.model_sha256

    def segment(self, request: SegmentRequest, deadline: float | None = None) -> SegmentRequest:
        """Evaluate pages of the segment until it ends or ``deadline`` (``time.monotonic()``) passes."""
        active, candidate = self.heads.get(request.active), self.heads.get(request.candidate)
        figures = EvaluationFigures()
        start_key = request.start_key
        seen = request.seen
        while True:
            page = self.store.scan_segment(
                request.segment,
                request.total_segments,
                start_key=start_key,
                limit=self.page_size,
                attributes=READ_ATTRIBUTES,
            )
            start_key = page.next_key
            seen += len(page.items) + len(page.unreadable)
            if page.unreadable:
                figures.skip("unreadable", len(page.unreadable))
            self._page(page.items, active, candidate, figures)
            if start_key is None or (deadline is not None and time.monotonic() > deadline):
                break
        self.parts.put_part(request.run_id, request.segment, request.part, figures)
        return request.model_copy(
            update={"start_key": start_key, "part": request.part + 1, "seen": seen, "done": start_key is None}
        )

    def _page(
        self, items: Sequence[ClassificationItem], active: Head, candidate: Head, figures: EvaluationFigures
    ) -> None:
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        labels: list[str | None] = []
        for item in items:
            reason = self._reason(item)
            if reason is None:
                assert item.embedding is not None  # _reason checked it
                try:
                    vectors.append(embedding_codec.head_input(item.embedding, active.input_dim))
                except CorruptEmbeddingError:
                    reason = "corrupt_embedding"
                else:
                    ids.append(item.picture_id)
                    labels.append(item.person_label)
            if reason is not None:
                figures.skip(reason)
        if ids:
            figures.add(ids, np.concatenate(vectors), active, candidate, labels)

    def _reason(self, item: ClassificationItem) -> str | None:
        """Why ``item`` is not scored (``None``: it is)."""
        if item.source.type == "api":
            return "api"  # the client's features are not kept
        if item.status != "classified":
            return item.status
        if item.embedding is None:
            return "no_embedding"
        if item.embedder_version != self.embedder_version:
            return "embedder_changed"
        return None

    def report(self, request: ReportRequest) -> EvaluationSummary:
        """Merge the run's parts into its report, keep it, and record it on the candidate."""
        total = EvaluationFigures()
        for part in self.parts.parts(request.run_id):
            total = total.merge(part)
        active, candidate = self.heads.get(request.active), self.heads.get(request.candidate)
        report = build_report(total, candidate=candidate, active=active)
        report["runId"] = request.run_id
        report["finishedAt"] = self.clock()
        key = self.parts.put_report(request.run_id, report)
        labelled = report["labelled"]
        summary = EvaluationSummary(
            compared=report["compared"],
            not_compared=sum(report["notCompared"].values()),
            agreement=report["agreement"],
            flips=report["flips"],
            labelled=labelled["items"],
            candidate_accuracy=labelled["candidateAccuracy"],
            active_accuracy=labelled["activeAccuracy"],
        )
        existing = self.records.get(request.candidate)
        previous = existing.evaluations.get(request.run_id) if existing else None
        ref = (
            previous
            or EvaluationRef(
                run_id=request.run_id,
                against=request.active,
                started_at=report["finishedAt"],
                started_by="unknown",
            )
        ).model_copy(
            update={
                "status": "succeeded",
                "report_key": key,
                "finished_at": report["finishedAt"],
                "summary": summary,
            }
        )
        self.records.put_evaluation(request.candidate, ref)
        return summary

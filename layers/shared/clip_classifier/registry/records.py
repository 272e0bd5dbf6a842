"""What the head registry keeps: one record per registered head, and the active pointer.

A head is addressed by its ``content_sha256`` (its version, the ``headVersion`` every result carries). Its
file is kept unchanged in the heads bucket (``heads/<version>.json``); its record (``HeadsTable``, keyed by
``version``) says what it is, where it came from, who registered it, its status, and its evaluations. One
more item, :data:`ACTIVE_KEY`, names the active head and the ones active before it: a rollback returns to
the first of those. Every change of that item is conditional on its ``revision``, so two operators cannot
both activate (one of them is told to try again).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.origin import describe_source
from clip_classifier.head.weights_format import WeightsDocument

#: The key of the active pointer item (a version is 64 hex digits: it can never collide).
ACTIVE_KEY = "#active"
#: How many earlier active heads the pointer remembers (each rollback steps back one).
MAX_HISTORY = 50

HeadStatus = Literal["candidate", "active", "retired"]
EvaluationStatus = Literal["running", "succeeded", "failed"]


class _Record(CamelModel):
    # Records written by a later version may carry attributes this one does not know.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class EvaluationSummary(_Record):
    """The headline figures of an evaluation, kept on the record (the full report is in S3)."""

    compared: int = 0
    not_compared: int = 0
    agreement: float | None = None
    flips: int = 0
    labelled: int = 0
    candidate_accuracy: float | None = None
    active_accuracy: float | None = None


class EvaluationRef(_Record):
    run_id: str
    #: The head it was compared with (the active head when the evaluation started).
    against: str
    started_at: str
    started_by: str
    status: EvaluationStatus = "running"
    #: The state machine execution (to tell a running evaluation from one that died).
    execution: str | None = None
    report_key: str | None = None
    finished_at: str | None = None
    summary: EvaluationSummary | None = None


class HeadRecord(_Record):
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    classes: list[str]
    head_type: str
    input_dim: int
    #: The embedders (model sha256) the head was made for; empty: any embedder of ``input_dim``.
    embedder_sha256: list[str] = Field(default_factory=list)
    #: Where it came from, as the file says (training figures, zero-shot prompts, exporter).
    provenance: dict[str, Any] = Field(default_factory=dict)
    #: Whether the head has an ambiguity guard (its results then carry ``ambiguous``).
    guarded: bool = False
    size_bytes: int = 0
    registered_by: str
    registered_at: str
    status: HeadStatus = "candidate"
    activated_at: str | None = None
    activated_by: str | None = None
    #: By run id (a map, so a run's entry is updated in place by one conditional write).
    evaluations: dict[str, EvaluationRef] = Field(default_factory=dict)

    @classmethod
    def of(cls, doc: WeightsDocument, *, size: int, by: str, at: str) -> HeadRecord:
        provenance = doc.provenance.model_dump(mode="json", exclude_none=True)
        return cls(
            version=doc.content_sha256,
            classes=list(doc.classes),
            head_type=doc.head_type,
            input_dim=doc.input_dim,
            embedder_sha256=list(doc.provenance.embedder_sha256),
            provenance=provenance,
            guarded=doc.ambiguity is not None,
            size_bytes=size,
            registered_by=by,
            registered_at=at,
        )

    @property
    def source(self) -> str:
        """Where the head came from, in a few words (what ``heads list`` and ``GET /v1/model`` say)."""
        return describe_source(self.head_type, self.provenance)

    def evaluations_newest_first(self) -> list[EvaluationRef]:
        return sorted(self.evaluations.values(), key=lambda ref: ref.started_at, reverse=True)

    @property
    def latest_evaluation(self) -> EvaluationRef | None:
        runs = self.evaluations_newest_first()
        return runs[0] if runs else None


class ActivePointer(_Record):
    """Which head is active, and the ones active before it (most recent first)."""

    version: str
    previous: list[str] = Field(default_factory=list, max_length=MAX_HISTORY)
    activated_by: str
    activated_at: str
    #: Incremented by every change; each change is conditional on the one it read.
    revision: int = Field(ge=1)

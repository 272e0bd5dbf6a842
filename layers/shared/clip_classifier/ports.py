"""The ports the services depend on: small protocols the AWS adapters implement, and in-memory fakes too
(``tests/fakes/``), so the core flows are tested without moto and the adapters are proven apart.

=====================  =================================================  ============================
port                   used by                                            adapter
=====================  =================================================  ============================
:class:`HeadProvider`  the upload, backfill and rescore jobs; the API     :class:`~.head.weights_cache.WeightsCache`
:class:`ObjectSource`  the upload and backfill jobs                       :class:`~.ingest.s3_source.S3ObjectSource`
:class:`ResultSink`    the upload and backfill jobs                       :class:`~.storage.results_table.ResultsStore`
:class:`ResultScan`    the rescore job                                    :class:`~.storage.results_table.ResultsStore`
:class:`ApiResults`    the scoring API                                    :class:`~.storage.results_table.ResultsStore`
:class:`BackfillListSink` the rescore job                                 :class:`~.storage.backfill_lists.BackfillLists`
=====================  =================================================  ============================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clip_classifier.events.messages import Detail
    from clip_classifier.head.forward import Head
    from clip_classifier.head.result_fields import ResultFields
    from clip_classifier.ingest.objects import CurrentVersion, ObjectLocation, OpenedObject
    from clip_classifier.storage.backfill_lists import ManifestResult
    from clip_classifier.storage.item_codec import ScanPage
    from clip_classifier.storage.result_item import ClassificationItem
    from clip_classifier.storage.results_table import ReviewPage


class HeadProvider(Protocol):
    def get(self) -> Head:
        """The head to score with now (loaded, verified, refreshed when due)."""
        ...

    def origin(self) -> dict[str, str]:
        """What its source says of the head served (the registry's metadata: who, when; may be empty)."""
        ...


class ObjectSource(Protocol):
    def current(self, bucket: str, key: str) -> CurrentVersion | None:
        """The key's current version, or ``None`` when it has none."""
        ...

    def open(self, location: ObjectLocation) -> OpenedObject | None:
        """The version's body as a stream, or ``None`` when it changed or vanished since ``location`` was
        taken; a body over the size limit is an ``ImageTooLargeError``."""
        ...


class ResultSink(Protocol):
    def put_if_newer(self, record: ClassificationItem) -> bool:
        """Write an S3 event's result unless a result of the same or a later event is stored."""
        ...

    def put_backfill(self, record: ClassificationItem) -> bool:
        """Write a backfill's result under the backfill's ordering rule."""
        ...

    def get_many(self, picture_ids: Sequence[str]) -> dict[str, ClassificationItem]:
        """The stored items of ``picture_ids`` (strongly consistent)."""
        ...


class ResultScan(Protocol):
    def scan_segment(
        self,
        segment: int,
        total_segments: int,
        *,
        start_key: dict[str, Any] | None,
        limit: int = 500,
        attributes: Sequence[str] = (),
    ) -> ScanPage:
        """One page of a parallel scan: items, unreadable items, and the key to continue from."""
        ...

    def update_result(
        self,
        previous: ClassificationItem,
        result: ResultFields,
        *,
        updated_at: str,
        review_sample_rate: float = 0.0,
    ) -> bool:
        """Set a new head's result while the item is still ``previous``'s classified version, with the
        person's label it was read with."""
        ...


class EventPublisher(Protocol):
    def publish(self, details: Sequence[Detail]) -> int:
        """Announce ``details``; how many were not published. Never raises: what they announce is done."""
        ...


class ReviewResults(Protocol):
    """The review loop's side of the results: the queue of results waiting for a person, and their labels."""

    def review_page(self, *, limit: int, start_key: dict[str, Any] | None = None) -> ReviewPage:
        """Up to ``limit`` waiting results, smallest top-1/top-2 margin first, and where to continue."""
        ...

    def set_label(self, picture_id: str, label: str, *, by: str, at: str) -> ClassificationItem | None:
        """A person's label beside a classified result (out of the queue): the item as written; ``None``: no
        such result."""
        ...

    def clear_label(self, item: ClassificationItem, *, review_sample_rate: float = 0.0) -> bool:
        """Withdraw the label ``item`` was read with (back in the queue if doubtful); ``False`` if it changed."""
        ...

    def get(self, picture_id: str) -> ClassificationItem | None: ...


class ApiResults(Protocol):
    def put_api_results(self, records: Sequence[ClassificationItem]) -> None:
        """Store API results all or nothing, never over an upload's item."""
        ...

    def get(self, picture_id: str) -> ClassificationItem | None: ...


class BackfillListSink(Protocol):
    def write(self, run_id: str, segment: int, part: int, rows: list[tuple[str, str]]) -> str:
        """One file of ``(bucket, key)`` rows a rescore could not score; its key."""
        ...

    def write_manifest(self, run_id: str) -> ManifestResult:
        """The manifest of the run's files, which the backfill reads."""
        ...

"""Classify one uploaded S3 object: the core of the upload function (never sees a Lambda event).

Per record: filter by prefix/suffix → one ``GetObject`` (pinned to the event's version or ETag; the size
limit checked from its headers before any body is read) → preprocess, decoding the body as it arrives →
embed → head → conditional write keyed by the event sequencer → (``PublishEvents``) the result announced on
the event bus, which never fails the record. Outcomes:

* ``classified`` / ``failed`` (a bad image: recorded with the reason, never retried) / ``deleted``;
  on a versioned bucket, removing one version or a delete marker for good leaves the picture as the key's
  current version shows it: still (or again) classified, or deleted when no version is current;
* ``duplicate`` — a result from the same or a newer event is already stored (at-least-once delivery);
* ``superseded`` — the object changed or vanished since the event; the newer event carries it;
* ``ignored`` — outside the configured prefix/suffixes, or (``code="other_bucket"``) from a bucket other
  than the configured upload bucket.

Transient AWS errors and configuration errors raise, so Lambda retries and then sends the event to the
dead-letter queue, from which ``python -m clip_classifier.jobs.redrive`` replays it. So does a record started
too close to the invocation's end (``deadline``): an image is only marked ``image_too_complex`` for its own
CPU budget, never because earlier records used the time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from clip_classifier.arrays import F32
from clip_classifier.events.messages import upload_events
from clip_classifier.exceptions import ImageError, InvocationTimeoutError
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.image.decode_guards import DecodeBudget
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.ingest.object_stream import ObjectStream
from clip_classifier.ingest.objects import ObjectLocation
from clip_classifier.ingest.s3_event import ObjectEvent
from clip_classifier.model.embedder import Embedder
from clip_classifier.ports import EventPublisher, HeadProvider, ObjectSource, ResultSink
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

#: What happened to one S3 record (the item's own status is :data:`~clip_classifier.storage.result_item.ItemStatus`).
OutcomeStatus = Literal["classified", "failed", "deleted", "duplicate", "superseded", "ignored"]
STAGES = ("download", "decode", "embed", "head", "store")


@dataclass
class Outcome:
    picture_id: str
    key: str
    status: OutcomeStatus
    code: str | None = None
    top_label: str | None = None
    #: The head's ambiguity guard marked the result (``None``: no guard, or no result).
    ambiguous: bool | None = None
    #: Milliseconds per stage (download, decode, embed, head, store) for the metrics.
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Events about the stored result that did not reach the bus (the result is stored all the same).
    events_failed: int = 0


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round((now - self._start) * 1000, 3)
        self._start = now

    def move(self, source: str, target: str, ms: float) -> None:
        """Attribute ``ms`` of ``source``'s lap to ``target`` (stages that overlapped)."""
        ms = min(ms, self.timings[source])
        self.timings[source] = round(self.timings[source] - ms, 3)
        self.timings[target] = round(self.timings[target] + ms, 3)


class UploadClassifier:
    def __init__(
        self,
        *,
        source: ObjectSource,
        store: ResultSink,
        weights: HeadProvider,
        embedder: Embedder,
        preprocessor: Preprocessor,
        key_prefix: str = "",
        key_suffixes: tuple[str, ...] = (),
        bucket: str = "",
        store_embeddings: bool = True,
        events: EventPublisher | None = None,
        review_sample_rate: float = 0.0,
    ) -> None:
        self.source = source
        #: Where stored results are announced (``PublishEvents``); ``None``: nowhere.
        self.events = events
        #: The share of confident results sent to the review queue too (``ReviewSampleRate``).
        self.review_sample_rate = review_sample_rate
        self.store = store
        self.weights = weights
        self.embedder = embedder
        self.preprocessor = preprocessor
        self.key_prefix = key_prefix
        self.key_suffixes = tuple(s.lower() for s in key_suffixes)
        #: The upload bucket; events for any other bucket are ignored (empty: accept every bucket).
        self.bucket = bucket
        #: Keep each image's embedding in its item (the StoreEmbeddings parameter) for later rescoring.
        self.store_embeddings = store_embeddings

    def wanted(self, key: str) -> bool:
        if self.key_prefix and not key.startswith(self.key_prefix):
            return False
        return not self.key_suffixes or key.lower().endswith(self.key_suffixes)

    def process(self, event: ObjectEvent, deadline: float | None = None) -> Outcome:
        """One record; ``deadline`` (a ``time.monotonic()`` value) is when the invocation must stop work."""
        picture_id = picture_id_for_key(event.key, self.key_prefix)
        if self.bucket and event.bucket != self.bucket:
            return Outcome(picture_id, event.key, "ignored", code="other_bucket")
        if not self.wanted(event.key):
            return Outcome(picture_id, event.key, "ignored")
        source = self._source_info(event)
        if (
            event.kind == "removed"
            and event.version_id
            and not event.event_name.endswith("DeleteMarkerCreated")
        ):
            # On a versioned bucket this removed one version (or a delete marker) for good; the key may
            # still have a current version — an older one, or the one a removed delete marker uncovered.
            # S3 versioning decides: the picture is what HEAD of the key shows now.
            current = self.source.current(event.bucket, event.key)
            if current is not None:
                shown = event.model_copy(
                    update={"version_id": current.version_id, "etag": current.etag, "size": current.size}
                )
                return self._classify(shown, picture_id, self._source_info(shown), deadline)
        if event.kind == "removed":
            marker = ClassificationItem(
                picture_id=picture_id, status="deleted", source=source, sequencer=event.normalized_sequencer
            )
            written = self.store.put_if_newer(marker)
            return Outcome(picture_id, event.key, "deleted" if written else "duplicate")
        return self._classify(event, picture_id, source, deadline)

    @staticmethod
    def _source_info(event: ObjectEvent) -> SourceInfo:
        return SourceInfo(
            type="s3",
            bucket=event.bucket,
            key=event.key,
            etag=event.etag,
            version_id=event.version_id,
            size=event.size,
            event_time=event.event_time,
        )

    def _classify(
        self, event: ObjectEvent, picture_id: str, source: SourceInfo, deadline: float | None
    ) -> Outcome:
        item, watch = self.classify_object(
            event, picture_id, source, sequencer=event.normalized_sequencer, deadline=deadline
        )
        if item is None:
            return Outcome(picture_id, event.key, "superseded", timings_ms=watch.timings)
        details = (
            {"code": item.error.code}
            if item.error
            else {"top_label": item.top_label, "ambiguous": item.ambiguous}
        )
        return self._store(item, event, watch, **details)

    def classify_object(
        self,
        location: ObjectLocation,
        picture_id: str,
        source: SourceInfo,
        *,
        sequencer: str | None,
        deadline: float | None,
    ) -> tuple[ClassificationItem | None, _Stopwatch]:
        """Read, decode, embed and score one object version: a ``classified`` item, a ``failed`` one for a
        bad image, or ``None`` when the object changed or vanished since ``location`` was taken. Nothing is
        stored here: the event path and the backfill each write with their own ordering rule."""
        if deadline is not None and time.monotonic() > deadline:
            raise InvocationTimeoutError("no time left in the invocation to classify the record; retried")
        watch = _Stopwatch()
        head = self.weights.get()  # checked against this embedder where it was loaded
        try:
            opened = self.source.open(location)
            watch.lap("download")
            if opened is None:
                return None, watch
            source = source.model_copy(update={"last_modified": opened.version.last_modified})
            stream = opened.stream
            with stream:
                budget = DecodeBudget(self.preprocessor.limits.max_decode_seconds, deadline)
                pixels = self._decode(stream, budget)
            watch.lap("decode")
            # Decoding overlapped the transfer; time spent waiting for bytes is the download's.
            watch.move("decode", "download", stream.wait_ms)
        except ImageError as exc:
            failed = ClassificationItem.failed(
                picture_id, code=exc.code, message=exc.message, source=source, sequencer=sequencer
            )
            return failed, watch
        # The head scores exactly what is stored, so a later rescore with the same head reproduces it.
        stored, features = embedding_codec.round_trip(self.embedder.embed(pixels))
        watch.lap("embed")
        prediction = head.predict(features)[0]
        watch.lap("head")
        classified = ClassificationItem.classified(
            picture_id,
            ResultFields.from_prediction(prediction, head_version=head.version),
            embedder_version=self.embedder.version,
            embedding=stored if self.store_embeddings else None,
            source=source,
            sequencer=sequencer,
            review_sample_rate=self.review_sample_rate,
        )
        return classified, watch

    def _store(
        self, record: ClassificationItem, event: ObjectEvent, watch: _Stopwatch, **details: Any
    ) -> Outcome:
        """Conditional write; a result from the same or a newer event already stored makes this a duplicate."""
        written = self.store.put_if_newer(record)
        watch.lap("store")
        status: OutcomeStatus = "failed" if record.status == "failed" else "classified"
        # Announced only once stored, and only by the write that stored it (not by a duplicate delivery).
        failed = self.events.publish(upload_events(record)) if written and self.events is not None else 0
        return Outcome(
            record.picture_id,
            event.key,
            status if written else "duplicate",
            timings_ms=watch.timings,
            events_failed=failed,
            **details,
        )

    def _decode(self, stream: ObjectStream, budget: DecodeBudget) -> F32:
        pixels = self.preprocessor(stream, budget).pixels
        # Decoders stop at the image's end marker; reading on lets the SDK verify length and checksum.
        stream.drain()
        return pixels

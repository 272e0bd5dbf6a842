"""One builder per function: it makes the clients, cache, store and services once per container and
passes them in. Nothing else creates them, and nothing finds them through a global.

The handlers call these at cold start (``functions/*/app.py``); tests and the local stack call them with
their own settings and clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clip_classifier.aws import AwsClients
from clip_classifier.head.fit import ServedEmbedder
from clip_classifier.head.weights_cache import WeightsCache
from clip_classifier.model.manifest import ModelManifest, load_manifest
from clip_classifier.settings import (
    EvaluateSettings,
    FunctionSettings,
    RescoreSettings,
    ReviewSettings,
    ScoreSettings,
    UploadSettings,
)
from clip_classifier.storage.results_table import ResultsStore
from clip_classifier.storage.weights_object import weights_cache_for

if TYPE_CHECKING:
    from clip_classifier.api.review import ReviewService
    from clip_classifier.api.scoring import ScoringService
    from clip_classifier.events.bridge import EventBridgePublisher
    from clip_classifier.jobs.backfill import BackfillService
    from clip_classifier.jobs.evaluate import EvaluationService
    from clip_classifier.jobs.rescore import RescoreService
    from clip_classifier.jobs.upload import UploadClassifier


def _weights(settings: FunctionSettings, clients: AwsClients, served: ServedEmbedder) -> WeightsCache:
    """The function's head, refused at load and every refresh unless it fits ``served``."""
    return weights_cache_for(
        settings.weights_uri,
        s3=clients.s3,
        cache_dir=settings.cache_dir,
        refresh_seconds=settings.weights_refresh_seconds,
        served=served,
    )


def _served(manifest: ModelManifest) -> ServedEmbedder:
    return ServedEmbedder(output_dim=manifest.output_dim, model_sha256=manifest.model_sha256)


@dataclass(frozen=True)
class ScoreFunction:
    settings: ScoreSettings
    service: ScoringService


def build_score_function(settings: ScoreSettings, clients: AwsClients) -> ScoreFunction:
    """The scoring API's dependencies. The head is loaded at the first request that needs it."""
    # Imported here: the API's models are the scoring function's, not the upload function's cold start.
    from clip_classifier.api.scoring import ScoringService, describe_embedder

    manifest = load_manifest(settings.embedder_manifest)
    service = ScoringService(
        _weights(settings, clients, _served(manifest)),
        ResultsStore(settings.results_table, clients.dynamodb),
        max_batch_items=settings.max_batch_items,
        embedder=describe_embedder(manifest),
    )
    return ScoreFunction(settings, service)


@dataclass(frozen=True)
class ReviewFunction:
    settings: ReviewSettings
    service: ReviewService


def build_review_function(settings: ReviewSettings, clients: AwsClients) -> ReviewFunction:
    """The reviewers' API's dependencies. The active head (its classes are the labels a person may give) is
    loaded at the first request that needs it; no embedder check: this function never scores."""
    from clip_classifier.api.review import ReviewService
    from clip_classifier.storage.image_links import S3ImageLinks
    from clip_classifier.storage.result_item import utc_now

    service = ReviewService(
        store=ResultsStore(settings.results_table, clients.dynamodb),
        head=weights_cache_for(
            settings.weights_uri,
            s3=clients.s3,
            cache_dir=settings.cache_dir,
            refresh_seconds=settings.weights_refresh_seconds,
        ),
        links=S3ImageLinks(clients.s3, settings.upload_bucket, expires_seconds=settings.image_link_seconds),
        clock=utc_now,
        events=events_for(settings.event_bus_name, clients),
        review_sample_rate=settings.review_sample_rate,
    )
    return ReviewFunction(settings, service)


@dataclass(frozen=True)
class UploadFunction:
    settings: UploadSettings
    classifier: UploadClassifier
    #: How long building took (model load and verification, head download): the ModelLoadMs metric.
    init_ms: float


def build_upload_function(settings: UploadSettings, clients: AwsClients) -> UploadFunction:
    """The upload pipeline with its model and head loaded and verified (the cold start)."""
    # Imported here, not at the top: the zip function imports this module and must never load
    # onnxruntime or Pillow, which only the container image ships.
    from clip_classifier.image.limits import ImageLimits
    from clip_classifier.image.preprocess import Preprocessor
    from clip_classifier.ingest.s3_source import S3ObjectSource
    from clip_classifier.jobs.upload import UploadClassifier
    from clip_classifier.model.embedder import Embedder

    start = time.perf_counter()
    embedder = Embedder(settings.model_path, threads=settings.intra_op_threads)
    limits = ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_decode_seconds=settings.max_decode_seconds,
    )
    weights = _weights(settings, clients, _served(embedder.manifest))
    weights.get()  # load (and verify) the head now rather than inside the first record's timings
    classifier = UploadClassifier(
        source=S3ObjectSource(clients.s3, max_bytes=limits.max_bytes),
        store=ResultsStore(settings.results_table, clients.dynamodb),
        weights=weights,
        embedder=embedder,
        preprocessor=Preprocessor(embedder.manifest.transform, limits, mode=settings.preprocess_mode),
        key_prefix=settings.key_prefix,
        key_suffixes=settings.key_suffixes,
        bucket=settings.upload_bucket,
        store_embeddings=settings.store_embeddings,
        events=events_for(settings.event_bus_name, clients),
        review_sample_rate=settings.review_sample_rate,
    )
    return UploadFunction(settings, classifier, init_ms=(time.perf_counter() - start) * 1000)


def events_for(bus_name: str, clients: AwsClients) -> EventBridgePublisher | None:
    """The event bus publisher when the stack publishes events (``PublishEvents``), else ``None``."""
    if not bus_name:
        return None
    from clip_classifier.events.bridge import EventBridgePublisher

    return EventBridgePublisher(clients.client("events"), bus_name)


@dataclass(frozen=True)
class BackfillFunction:
    settings: UploadSettings
    service: BackfillService
    init_ms: float


def build_backfill_function(settings: UploadSettings, clients: AwsClients) -> BackfillFunction:
    """The backfill's batch function: the upload pipeline itself (same image, settings and ordering guard),
    driven by listed keys instead of S3 events."""
    from clip_classifier.jobs.backfill import BackfillService

    upload = build_upload_function(settings, clients)
    return BackfillFunction(settings, BackfillService(upload.classifier), init_ms=upload.init_ms)


@dataclass(frozen=True)
class RescoreFunction:
    settings: RescoreSettings
    service: RescoreService


def build_rescore_function(settings: RescoreSettings, clients: AwsClients) -> RescoreFunction:
    """The rescore function: the head, the table and the backfill lists; no model, no images."""
    from clip_classifier.jobs.rescore import RescoreService
    from clip_classifier.storage.backfill_lists import BackfillLists

    manifest = load_manifest(settings.embedder_manifest)
    service = RescoreService(
        ResultsStore(settings.results_table, clients.dynamodb),
        _weights(settings, clients, _served(manifest)),
        BackfillLists(
            clients.s3, settings.reports_bucket, settings.reports_prefix, source_bucket=settings.upload_bucket
        ),
        embedder_version=manifest.model_sha256,
        page_size=settings.page_size,
        review_sample_rate=settings.review_sample_rate,
    )
    return RescoreFunction(settings, service)


@dataclass(frozen=True)
class EvaluateFunction:
    settings: EvaluateSettings
    service: EvaluationService


def build_evaluate_function(settings: EvaluateSettings, clients: AwsClients) -> EvaluateFunction:
    """The shadow evaluation's function: registered heads, the results table, the reports bucket."""
    from clip_classifier.jobs.evaluate import EvaluationService, RegisteredHeads
    from clip_classifier.storage.evaluation_reports import S3EvaluationReports
    from clip_classifier.storage.head_registry import DynamoHeadRecords, S3HeadFiles

    manifest = load_manifest(settings.embedder_manifest)
    service = EvaluationService(
        ResultsStore(settings.results_table, clients.dynamodb),
        RegisteredHeads(S3HeadFiles(settings.heads_bucket, clients.s3), _served(manifest)),
        S3EvaluationReports(clients.s3, settings.reports_bucket, settings.reports_prefix),
        DynamoHeadRecords(settings.heads_table, clients.dynamodb),
        page_size=settings.page_size,
    )
    return EvaluateFunction(settings, service)

"""Per-container singletons, created lazily on first use (never at import, never per invocation)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .api_models import EmbedderInfo
from .manifest import load_manifest
from .results_store import ResultsStore
from .scoring import ScoringService
from .settings import Settings, load_settings
from .weights_cache import WeightsCache

if TYPE_CHECKING:
    from .upload_classifier import UploadClassifier

_lock = threading.Lock()
_singletons: dict[str, Any] = {}


def settings() -> Settings:
    with _lock:
        if "settings" not in _singletons:
            _singletons["settings"] = load_settings()
        value: Settings = _singletons["settings"]
        return value


def weights_cache() -> WeightsCache:
    cfg = settings()
    with _lock:
        if "weights" not in _singletons:
            cfg.require("weights_uri")
            _singletons["weights"] = WeightsCache(
                cfg.weights_uri, cache_dir=cfg.cache_dir, refresh_seconds=cfg.weights_refresh_seconds
            )
        value: WeightsCache = _singletons["weights"]
        return value


def results_store() -> ResultsStore:
    cfg = settings()
    with _lock:
        if "store" not in _singletons:
            cfg.require("results_table")
            _singletons["store"] = ResultsStore(cfg.results_table)
        value: ResultsStore = _singletons["store"]
        return value


def scoring_service() -> ScoringService:
    weights, store, cfg = weights_cache(), results_store(), settings()
    with _lock:
        if "scoring" not in _singletons:
            _singletons["scoring"] = ScoringService(weights, store, max_batch_items=cfg.max_batch_items)
        value: ScoringService = _singletons["scoring"]
        return value


def singleton(name: str, factory: Any) -> Any:
    """Get or create a named per-container object (used by the upload function for the embedder)."""
    with _lock:
        if name not in _singletons:
            _singletons[name] = factory()
        return _singletons[name]


def reset() -> None:
    """Forget everything (tests, and the local stack when its configuration changes)."""
    from .aws import reset_clients

    with _lock:
        _singletons.clear()
    reset_clients()


def embedder_info() -> EmbedderInfo | None:
    """What embedder produced server-side features, when a manifest is configured (MANIFEST_PATH)."""
    cfg = settings()
    if cfg.manifest_path is None:
        return None

    def build() -> EmbedderInfo:
        manifest = load_manifest(cfg.resolved_manifest_path)
        return EmbedderInfo(
            model_id=manifest.model_id,
            model_sha256=manifest.model_sha256,
            output_dim=manifest.output_dim,
            quantization=manifest.quantization,
        )

    info: EmbedderInfo = singleton("embedder_info", build)
    return info


def upload_classifier() -> UploadClassifier:
    """The upload pipeline with its model loaded (cold start: imports, model, weights)."""
    from .embedder import Embedder
    from .preprocess import ImageLimits, Preprocessor
    from .upload_classifier import UploadClassifier

    cfg = settings()
    weights, store = weights_cache(), results_store()

    def build() -> UploadClassifier:
        embedder = Embedder(cfg.model_path, cfg.resolved_manifest_path, threads=cfg.intra_op_threads)
        preprocessor = Preprocessor(
            embedder.manifest.transform,
            ImageLimits(max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels),
            mode=cfg.preprocess_mode,
        )
        weights.get()  # load (and verify) the head now rather than inside the first record's timings
        from .aws import s3_client

        return UploadClassifier(
            s3=s3_client,
            store=store,
            weights=weights,
            embedder=embedder,
            preprocessor=preprocessor,
            key_prefix=cfg.key_prefix,
            key_suffixes=cfg.key_suffixes,
        )

    classifier: UploadClassifier = singleton("upload_classifier", build)
    return classifier


def has(name: str) -> bool:
    """Whether a named singleton exists yet (the handler uses it to time cold starts)."""
    with _lock:
        return name in _singletons

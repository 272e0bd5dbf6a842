"""Feature scoring: the core behind the HTTP API (never sees a Lambda event)."""

from __future__ import annotations

import numpy as np

from .api_models import EmbedderInfo, FeatureItem, ModelInfo, ScoreResult
from .exceptions import InvalidFeaturesError, ResultNotFoundError
from .head import Head
from .records import ClassificationRecord, SourceInfo
from .results_store import ResultsStore
from .weights_cache import WeightsCache


class ScoringService:
    def __init__(self, weights: WeightsCache, store: ResultsStore, *, max_batch_items: int = 100) -> None:
        self.weights = weights
        self.store = store
        self.max_batch_items = max_batch_items

    def score(self, entries: list[FeatureItem], *, batch: bool) -> list[ScoreResult]:
        """Validate every entry first, then score all of them at once and store those with a pictureId.

        Nothing is written unless the whole request is valid.
        """
        if len(entries) > self.max_batch_items:
            raise InvalidFeaturesError(
                f"items must have at most {self.max_batch_items} entries, got {len(entries)}", field="items"
            )
        head = self.weights.get()
        rows = []
        for i, entry in enumerate(entries):
            prefix = f"items[{i}]." if batch else ""
            try:
                rows.append(head.as_batch(entry.features))
            except InvalidFeaturesError as exc:
                raise InvalidFeaturesError(f"{prefix}{exc.message}", field=f"{prefix}{exc.field}") from exc
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.picture_id is not None:
                if entry.picture_id in seen:
                    raise InvalidFeaturesError(
                        f"items[{i}].pictureId '{entry.picture_id}' appears more than once in the batch",
                        field=f"items[{i}].pictureId",
                    )
                seen.add(entry.picture_id)

        predictions = head.predict_batch(np.concatenate(rows))
        records = [
            ClassificationRecord.classified(
                e.picture_id, p, head_version=head.version, source=SourceInfo(type="api")
            )
            for e, p in zip(entries, predictions, strict=True)
            if e.picture_id is not None
        ]
        if len(records) == 1:
            self.store.put(records[0])
        elif records:
            self.store.put_many(records)
        return [
            ScoreResult(
                picture_id=e.picture_id,
                classes=list(p.classes),
                probabilities=dict(zip(p.classes, p.probabilities, strict=True)),
                scores=dict(zip(p.classes, p.scores, strict=True)),
                top_label=p.top_label,
                top_probability=p.top_probability,
                head_version=head.version,
                stored=e.picture_id is not None,
            )
            for e, p in zip(entries, predictions, strict=True)
        ]

    def get(self, picture_id: str) -> ClassificationRecord:
        record = self.store.get(picture_id)
        if record is None:
            raise ResultNotFoundError(f"no classification for pictureId '{picture_id}'")
        return record

    def model_info(self, embedder: EmbedderInfo | None = None) -> ModelInfo:
        head: Head = self.weights.get()
        return ModelInfo(
            classes=list(head.classes),
            input_dim=head.input_dim,
            input_normalization=head.input_normalization,
            output=head.output,
            head_type=head.head_type,
            head_version=head.version,
            max_batch_items=self.max_batch_items,
            embedder=embedder,
        )

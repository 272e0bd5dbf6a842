"""Feature scoring: the core behind the HTTP API (never sees a Lambda event)."""

from __future__ import annotations

from clip_classifier.api.models import (
    BatchScoreResponse,
    Classification,
    EmbedderInfo,
    HeadInfo,
    ImageTransformInfo,
    ModelInfo,
    ScoreRequest,
    ScoreResult,
)
from clip_classifier.api.score_request import validate_score_request
from clip_classifier.exceptions import (
    CorruptEmbeddingError,
    EmbeddingFromAnotherModelError,
    PictureConflictError,
    ResultNotFoundError,
)
from clip_classifier.head.origin import describe_source, is_example
from clip_classifier.head.result_fields import ResultFields
from clip_classifier.model.manifest import ModelManifest
from clip_classifier.ports import ApiResults, HeadProvider
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.result_item import ClassificationItem, SourceInfo

#: What a stored item shows clients: everything but the internal ordering and TTL attributes, and the
#: embedding, which is decoded only when asked for.
PUBLIC_ITEM_FIELDS = set(Classification.model_fields) - {"embedding", "final_label"}


class ScoringService:
    def __init__(
        self, weights: HeadProvider, store: ApiResults, *, max_batch_items: int, embedder: EmbedderInfo
    ) -> None:
        self.weights = weights
        self.store = store
        self.max_batch_items = max_batch_items
        self.embedder = embedder

    def score(self, request: ScoreRequest) -> ScoreResult | BatchScoreResponse:
        """Validate the whole request, score it at once, then store the entries that have a pictureId.

        Nothing is written unless the whole request is valid.
        """
        head = self.weights.get()
        batch = validate_score_request(request, head, max_items=self.max_batch_items)
        predictions = head.predict(batch.features)
        fields = [ResultFields.from_prediction(p, head_version=head.version) for p in predictions]
        items = [
            ClassificationItem.classified(picture_id, result, source=SourceInfo(type="api"))
            for picture_id, result in zip(batch.picture_ids, fields, strict=True)
            if picture_id is not None
        ]
        try:
            self.store.put_api_results(items)
        except PictureConflictError as exc:
            where = (
                f"items[{batch.picture_ids.index(exc.picture_id)}].pictureId"
                if batch.is_batch
                else "pictureId"
            )
            raise PictureConflictError(exc.message, field=where, picture_id=exc.picture_id) from exc
        results = [
            ScoreResult(**dict(result), picture_id=picture_id, stored=picture_id is not None)
            for picture_id, result in zip(batch.picture_ids, fields, strict=True)
        ]
        return BatchScoreResponse(items=results) if batch.is_batch else results[0]

    def get(self, picture_id: str, *, include_embedding: bool = False) -> Classification:
        item = self.store.get(picture_id)
        if item is None:
            raise ResultNotFoundError(f"no classification for pictureId '{picture_id}'")
        result = Classification.model_validate(item.model_dump(include=PUBLIC_ITEM_FIELDS))
        result.final_label = item.final_label if item.status == "classified" else None
        if include_embedding and item.embedding is not None:
            try:
                dimension = embedding_codec.dimension(item.embedding)
                features = embedding_codec.head_input(item.embedding, dimension)
            except CorruptEmbeddingError as exc:
                raise CorruptEmbeddingError(f"pictureId '{picture_id}': {exc.message}") from exc
            served = self.embedder
            if item.embedder_version != served.model_sha256 or dimension != served.output_dim:
                # The rescore's rule: features from another model are never scored here; say so rather
                # than return numbers POST /v1/scores would refuse or misread.
                raise EmbeddingFromAnotherModelError(
                    f"pictureId '{picture_id}' keeps a {dimension}-d embedding from model "
                    f"{str(item.embedder_version)[:12]}…, not from the model this API serves "
                    f"({served.model_sha256[:12]}…, {served.output_dim}-d): re-classify the image (backfill)"
                )
            result.embedding = features[0].tolist()
        return result

    def model_info(self) -> ModelInfo:
        head = self.weights.get()
        origin = self.weights.origin()
        info = HeadInfo(
            version=head.version,
            head_type=head.head_type,
            source=describe_source(head.head_type, head.provenance),
            meaningful=not is_example(head.provenance),
            registered_by=origin.get("registered-by"),
            registered_at=origin.get("registered-at"),
            activated_by=origin.get("activated-by"),
            activated_at=origin.get("activated-at"),
        )
        return ModelInfo(
            classes=list(head.classes),
            input_dim=head.input_dim,
            input_normalization=head.input_normalization,
            output=head.output,
            head_type=head.head_type,
            head_version=head.version,
            max_batch_items=self.max_batch_items,
            embedder=self.embedder,
            head=info,
        )


def describe_embedder(manifest: ModelManifest) -> EmbedderInfo:
    """The API's description of the image embedder, from its manifest."""
    return EmbedderInfo(
        model_id=manifest.model_id,
        revision=manifest.revision,
        random_init=manifest.random_init,
        model_sha256=manifest.model_sha256,
        output_dim=manifest.output_dim,
        quantization=manifest.quantization,
        transform=ImageTransformInfo(**manifest.transform.model_dump()),
    )

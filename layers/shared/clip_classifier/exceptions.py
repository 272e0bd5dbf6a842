"""Every error the classifier raises on purpose.

Each error carries a stable machine-readable ``code`` (stored in ``failed`` records, returned by the API,
used as a metric dimension) and says whether it is ``transient``: a transient error is worth retrying
(Lambda retries the invocation, then the event goes to the dead-letter queue); a permanent one is recorded
once and never retried, so a bad image cannot cause a retry storm.
"""

from __future__ import annotations


class ClassifierError(Exception):
    """Base class of all deliberate errors."""

    code: str = "internal_error"
    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(ClassifierError):
    """A setting is missing or malformed."""

    code = "configuration_error"


# --- head weights -------------------------------------------------------------------------------------


class WeightsError(ClassifierError):
    """The MLP head weights cannot be used."""

    code = "weights_error"


class WeightsFormatError(WeightsError):
    """The weights document is not valid JSON or breaks the schema."""

    code = "weights_invalid"


class WeightsTooLargeError(WeightsFormatError):
    """The weights file is over the size any function downloads or parses."""

    code = "weights_too_large"


class WeightsMismatchError(WeightsError):
    """The head is valid but not for the embedder this function serves (another dimension or model)."""

    code = "weights_mismatch"


class WeightsNotFoundError(WeightsError):
    code = "weights_not_found"


class WeightsAccessDeniedError(WeightsError):
    code = "weights_access_denied"


class WeightsIntegrityError(WeightsError):
    """The content does not hash to the declared sha256."""

    code = "weights_integrity"


class WeightsUnavailableError(WeightsError):
    """S3 throttled, failed or timed out while fetching the weights."""

    code = "weights_unavailable"
    transient = True


class HeadInputError(ClassifierError):
    """The head was given a vector it cannot score (a zero vector, the wrong shape): a caller's fault, never
    a result."""

    code = "head_input_invalid"


# --- input features -----------------------------------------------------------------------------------


class InvalidFeaturesError(ClassifierError):
    """A score request is well-formed JSON but cannot be scored; ``field`` is its path (``items[3].features``)."""

    code = "invalid_features"

    def __init__(self, message: str, *, field: str = "features") -> None:
        super().__init__(message)
        self.field = field


class MalformedBodyError(ClassifierError):
    """The request body is not JSON this API can parse within its bounds (nesting, number size)."""

    code = "malformed_json"


class BodyTooLargeError(ClassifierError):
    """The request body is over the configured size in bytes (``MAX_BODY_BYTES``)."""

    code = "body_too_large"


class UnsupportedMediaTypeError(ClassifierError):
    """The request body is sent as something other than JSON."""

    code = "unsupported_media_type"


class PictureConflictError(ClassifierError):
    """An API result would replace a result (or deletion) that came from an uploaded image."""

    code = "picture_owned_by_upload"

    def __init__(self, message: str, *, field: str, picture_id: str) -> None:
        super().__init__(message)
        self.field = field
        self.picture_id = picture_id


class ResultNotFoundError(ClassifierError):
    """No stored classification for the requested pictureId."""

    code = "not_found"


class LabelError(ClassifierError):
    """A person's label that is not one of the active head's classes (nor "none of these")."""

    code = "label_invalid"


class NotSignedInError(ClassifierError):
    """A reviewers' request without a verified identity (API Gateway's authorizer passes none): refused."""

    code = "unauthorized"


class InvalidCursorError(ClassifierError):
    """A review-queue cursor this API did not hand out (or for another page order)."""

    code = "cursor_invalid"


class EmbeddingFromAnotherModelError(ClassifierError):
    """A stored embedding another model made (or of another dimension): its features are not this API's to
    score, as the rescore will not score them either; a backfill re-classifies the image."""

    code = "embedding_other_model"


class CorruptEmbeddingError(ClassifierError):
    """A stored embedding cannot be decoded (wrong size, failed CRC, not a unit vector): never scored."""

    code = "embedding_corrupt"


# --- image embedder -----------------------------------------------------------------------------------


class ModelError(ClassifierError):
    code = "model_error"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelIntegrityError(ModelError):
    code = "model_integrity"


class ModelFormatError(ModelError):
    code = "model_invalid"


class ModelOutputError(ModelError):
    """The model returned an embedding no head can score (not finite, zero, or too long for float32): a
    model fault, not the image's, so the record is retried and dead-lettered for a replay once fixed."""

    code = "model_output_invalid"


# --- images -------------------------------------------------------------------------------------------


class ImageError(ClassifierError):
    """The uploaded object cannot be classified. Permanent: it is recorded as a ``failed`` item."""

    code = "image_error"


class EmptyImageError(ImageError):
    code = "image_empty"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class ImageTooManyPixelsError(ImageError):
    """Too many pixels to decode safely (includes decompression bombs)."""

    code = "image_too_many_pixels"


class ImageTooComplexError(ImageError):
    """Decoding would take more work than any real photo needs (thousands of scans, a CPU budget spent)."""

    code = "image_too_complex"


class UnsupportedImageError(ImageError):
    code = "image_unsupported"


class CorruptImageError(ImageError):
    code = "image_corrupt"


class InvocationTimeoutError(ClassifierError):
    """The invocation's time ran out before a record was finished: retried, since the image may be fine."""

    code = "invocation_timeout"
    transient = True


# --- AWS adapters -------------------------------------------------------------------------------------


class SourceObjectError(ClassifierError):
    """The uploaded S3 object cannot be read."""

    code = "source_error"


class SourceAccessDeniedError(SourceObjectError):
    code = "source_access_denied"


class TransientSourceError(SourceObjectError):
    code = "source_unavailable"
    transient = True


class ResultsStoreError(ClassifierError):
    code = "results_store_error"


class TransientResultsStoreError(ResultsStoreError):
    code = "results_store_unavailable"
    transient = True


# --- batch jobs (backfill, rescore) ---------------------------------------------------------------------


class InvalidBatchError(ClassifierError):
    """A state machine handed a batch function an input it does not accept: fix the input, not retried."""

    code = "invalid_batch"


class TransientBatchError(ClassifierError):
    """A batch stopped on a transient error after trying every key; its state machine retries it (the one
    name the definitions' ``Retry`` lists, whatever the cause)."""

    code = "batch_retry"
    transient = True


# --- the head registry (clip-classifier heads ...) ----------------------------------------------------


class RegistryError(ClassifierError):
    """The head registry cannot do what was asked (the message says why, in one line)."""

    code = "registry_error"


class UnknownHeadError(RegistryError):
    """No registered head has that version (or version prefix)."""

    code = "unknown_head"


class AmbiguousVersionError(RegistryError):
    """A version prefix matches more than one registered head."""

    code = "ambiguous_version"


class RegistryConflictError(RegistryError):
    """Someone else activated or rolled back at the same moment: nothing was changed; try again."""

    code = "registry_conflict"
    transient = True


class EvaluationRunningError(RegistryError):
    """The head has an evaluation still running."""

    code = "evaluation_running"


class NothingToRollBackError(RegistryError):
    """No head was active before the active one."""

    code = "nothing_to_roll_back"


class TransientRegistryError(RegistryError):
    code = "registry_unavailable"
    transient = True

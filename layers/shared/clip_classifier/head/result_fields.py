"""The fields of a classification result, built from a :class:`~.head.Prediction` in one place.

Both writers — the scoring API and the upload classifier — and both contracts — the API's responses and the
DynamoDB item — take these fields from :meth:`ResultFields.from_prediction`, so a result reads the same
wherever it comes from.
"""

from __future__ import annotations

from pydantic import Field

from clip_classifier.camel import CamelModel
from clip_classifier.head.forward import Prediction


class RankedLabel(CamelModel):
    label: str
    probability: float


#: How many labels a result ranks (``top``).
TOP_COUNT = 3
TOP_DESCRIPTION = "The three most probable labels, most probable first."
AMBIGUOUS_DESCRIPTION = (
    "With a head that carries an ambiguity guard: true when the top probability or its margin over the "
    "second label is below the head's thresholds (fitted for a target precision) — treat topLabel as a "
    "guess: show `top` or ask a person. null with a head without a guard."
)


class ResultFields(CamelModel):
    classes: list[str]
    #: Normalised probabilities (they sum to 1), by class.
    probabilities: dict[str, float]
    #: The final activation's raw outputs (sigmoid or softmax), by class.
    scores: dict[str, float]
    top_label: str
    top_probability: float
    top: list[RankedLabel] = Field(description=TOP_DESCRIPTION)
    ambiguous: bool | None = Field(default=None, description=AMBIGUOUS_DESCRIPTION)
    #: ``content_sha256`` of the head that produced the result.
    head_version: str

    @classmethod
    def from_prediction(cls, prediction: Prediction, *, head_version: str) -> ResultFields:
        return cls(
            classes=list(prediction.classes),
            probabilities=dict(zip(prediction.classes, prediction.probabilities, strict=True)),
            scores=dict(zip(prediction.classes, prediction.scores, strict=True)),
            top_label=prediction.top_label,
            top_probability=prediction.top_probability,
            top=[RankedLabel(label=label, probability=p) for label, p in prediction.top(TOP_COUNT)],
            ambiguous=prediction.ambiguous,
            head_version=head_version,
        )

"""Whether a valid head is one this function may serve: the one check every function applies, the same
way, when a head enters it (:class:`~clip_classifier.head.weights_cache.WeightsCache`).

A head scores features of one embedder: the dimension must be the embedder's, and a head that names the
embedders it was made for (a trained head, a zero-shot head) is refused by any other model — its classes
would be scored on features from another space, and every image would get much the same label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clip_classifier.exceptions import WeightsMismatchError
from clip_classifier.head.forward import Head


@dataclass(frozen=True, slots=True)
class ServedEmbedder:
    """The image embedder whose features a function scores (from its model manifest)."""

    output_dim: int
    model_sha256: str


def check_head_fits(head: Head, served: ServedEmbedder, *, location: str) -> None:
    """:class:`WeightsMismatchError` naming both sides when ``head`` is not for ``served``."""
    check_fits(head.input_dim, head.embedders, served, location=location)


def check_fits(
    input_dim: int,
    embedders: Sequence[str],
    served: ServedEmbedder,
    *,
    location: str,
    who: str = "this function",
) -> None:
    """The check itself, from a head's input dimension and the embedders it names (also what the registry
    knows of a head without loading it)."""
    if input_dim != served.output_dim:
        raise WeightsMismatchError(
            f"head {location} expects {input_dim} features but the embedder {who} serves "
            f"({served.model_sha256[:12]}…) outputs {served.output_dim}"
        )
    if embedders and served.model_sha256 not in embedders:
        made_for = ", ".join(f"{sha[:12]}…" for sha in embedders)
        raise WeightsMismatchError(
            f"head {location} was made for the embedder {made_for}, but {who} serves "
            f"{served.model_sha256[:12]}…: make the head again with this model, or deploy the model it was "
            "made with"
        )

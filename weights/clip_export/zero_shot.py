"""Zero-shot heads: class names (and prompts) → CLIP text embeddings → a head in the runtime's weights format.

Per class, every prompt is embedded by the exported text tower, L2-normalised, averaged and normalised
again (CLIP's prompt ensembling, Radford et al. 2021 §3.1.4). The head is one ``linear`` layer of those
prototypes × CLIP's ``logit_scale`` with a ``softmax`` output on L2-normalised image features — exactly
CLIP's ``softmax(logit_scale · cos(image, text))`` — so both functions serve it unchanged.

:func:`wise_ft` interpolates a zero-shot head with a trained linear head of the same classes (WiSE-FT,
Wortsman et al. 2022): the hook the head trainer uses for ``--init zero-shot`` / ``--wise-alpha``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clip_classifier.head.labels import classes_problem
from clip_classifier.head.weights_format import WeightsDocument
from clip_classifier.model.manifest import ModelManifest

from .head_files import head_document
from .text_model import TextModelManifest


class Encoder(Protocol):
    def embed(self, texts: list[str], batch: int = 64) -> np.ndarray: ...


def read_classes(path: Path) -> list[str]:
    """One label per line (blank lines and ``#`` comments ignored), in output order, NFC-normalised, and
    checked up front by the runtime's own label rules (:func:`~clip_classifier.head.labels.classes_problem`)."""
    labels = [unicodedata.normalize("NFC", line.strip()) for line in read_text(path).splitlines()]
    labels = [label for label in labels if label and not label.startswith("#")]
    if not labels:
        raise SystemExit(f"{path}: no class labels (one per line)")
    problem = classes_problem(labels)
    if problem:
        raise SystemExit(f"{path}: {problem}")
    return labels


def read_text(path: Path) -> str:
    """A UTF-8 text file, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SystemExit(f"{path}: no such file") from exc
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise SystemExit(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def read_prompts(path: Path, classes: Sequence[str]) -> dict[str, list[str]]:
    """``label: description`` lines, any number per class; every class needs one, no unknown labels."""
    prompts: dict[str, list[str]] = {label: [] for label in classes}
    unknown: list[str] = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        label, sep, text = line.partition(":")
        if not sep or not text.strip():
            raise SystemExit(f"{path}:{number}: expected 'label: description', got {line.strip()!r}")
        label = unicodedata.normalize("NFC", label.strip())
        if label not in prompts:
            unknown.append(label)
            continue
        prompts[label].append(text.strip())
    if unknown:
        raise SystemExit(f"{path}: prompts for labels not in the classes: {', '.join(sorted(set(unknown)))}")
    missing = [label for label, texts in prompts.items() if not texts]
    if missing:
        raise SystemExit(f"{path}: no prompts for classes: {', '.join(missing)}")
    return prompts


def from_templates(classes: Sequence[str], templates: Sequence[str]) -> dict[str, list[str]]:
    return {label: [template.format(label) for template in templates] for label in classes}


def check_pairing(vision: ModelManifest, text: TextModelManifest) -> None:
    """Text and image embeddings are comparable only when both towers come from one CLIP model."""
    if vision.model_sha256 not in text.vision_model_sha256:
        raise SystemExit(
            f"the text tower ({text.model_id}, {text.revision}) was not exported with the vision model "
            f"{vision.model_id} ({vision.revision}, sha256 {vision.model_sha256[:12]}…): their embeddings live "
            "in different spaces. Export both with weights/export_clip_onnx.py --text and use that --model-dir"
        )
    if vision.output_dim != text.output_dim:
        raise SystemExit(
            f"vision embeddings are {vision.output_dim}-d but text embeddings {text.output_dim}-d"
        )


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True))


def class_prototypes(encoder: Encoder, prompts: Mapping[str, Sequence[str]]) -> np.ndarray:
    """[classes, dim]: each class's prompt embeddings normalised, averaged, normalised again."""
    return np.stack([_unit(_unit(encoder.embed(list(texts))).mean(axis=0)) for texts in prompts.values()])


def zero_shot_document(
    classes: Sequence[str],
    prototypes: np.ndarray,
    text: TextModelManifest,
    vision: ModelManifest,
    prompts: Mapping[str, Sequence[str]],
    prompt_source: str,
) -> dict[str, Any]:
    training = {
        "method": "zero-shot (CLIP text prototypes × logit_scale, softmax)",
        "prompt_source": prompt_source,
        "prompts_per_class": {label: len(texts) for label, texts in prompts.items()},
        "logit_scale": text.logit_scale,
        "model_id": vision.model_id,
        "vision_model_sha256": vision.model_sha256,
        "text_model_sha256": text.model_sha256,
    }
    return head_document(
        classes,
        [(prototypes * text.logit_scale, np.zeros(len(classes)))],
        output="softmax",
        head_type="zero_shot",
        training=training,
        exported_by="weights/zero_shot_head.py",
        # Every vision model exported with this text tower (fp32 and int8): the head is for those only.
        embedder_sha256=text.vision_model_sha256,
    )


def _single_linear(doc: WeightsDocument) -> tuple[np.ndarray, np.ndarray]:
    arrays = doc.arrays()
    if len(arrays) != 1 or doc.output != "softmax" or doc.input_normalization != "l2":
        raise ValueError("WiSE-FT interpolates one-layer softmax heads on L2-normalised features")
    return arrays[0]


def wise_ft(zero_shot: WeightsDocument, trained: WeightsDocument, alpha: float) -> dict[str, Any]:
    """(1 − α)·zero-shot + α·trained weights and biases; α = 0 is the zero-shot head, 1 the trained one."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if zero_shot.classes != trained.classes or zero_shot.input_dim != trained.input_dim:
        raise ValueError("WiSE-FT needs the same classes, in the same order, and the same input dimension")
    (w0, b0), (w1, b1) = _single_linear(zero_shot), _single_linear(trained)
    training = {
        "method": "WiSE-FT interpolation",
        "alpha": alpha,
        "zero_shot_head": zero_shot.content_sha256,
        "trained_head": trained.content_sha256,
    }
    return head_document(
        zero_shot.classes,
        [((1 - alpha) * w0 + alpha * w1, (1 - alpha) * b0 + alpha * b1)],
        output="softmax",
        head_type="logreg",
        training=training,
        exported_by="clip_export.zero_shot.wise_ft",
        embedder_sha256=trained.provenance.embedder_sha256 or zero_shot.provenance.embedder_sha256,
    )

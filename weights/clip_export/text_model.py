"""CLIP's exported text tower: its manifest and an encoder (tokeniser + onnxruntime session).

Offline only: text embeddings are computed when a zero-shot head is built, never inside a Lambda function.
The manifest names the vision models the tower was exported with, because text and image embeddings are
only comparable when both towers come from one CLIP model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from pydantic import Field, ValidationError

from clip_classifier.model.manifest import ExportedModel, file_sha256

from .text_tokens import TextTokens

TEXT_INPUT, TEXT_OUTPUT = "input_ids", "text_embeds"


class TextModelManifest(ExportedModel):
    """The text tower, exported beside the image tower it pairs with."""

    format: Literal["clip-text-embedder"] = "clip-text-embedder"
    format_version: Literal[1] = 1
    input_name: str = TEXT_INPUT
    output_name: str = TEXT_OUTPUT
    context_length: int = Field(ge=2)
    tokenizer_file: str = "tokenizer.json"
    pad_id: int
    #: exp(logit_scale): CLIP's learned temperature; zero-shot logits are this × cosine similarity.
    logit_scale: float = Field(gt=0)
    quantization: Literal["none", "int8-dynamic"]
    model_file: str = "model.onnx"
    #: sha256 of every vision model file exported with this tower (fp32 and int8): the pairing.
    vision_model_sha256: list[str]
    exported_by: str = "weights/export_clip_onnx.py --text"


def load_text_manifest(folder: Path) -> TextModelManifest:
    path = folder / "manifest.json"
    try:
        return TextModelManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise SystemExit(
            f"no text tower at {folder}: export one with weights/export_clip_onnx.py --text"
        ) from exc
    except ValidationError as exc:
        raise SystemExit(f"invalid text model manifest {path}: {exc.errors(include_url=False)[:3]}") from exc


class TextEncoder:
    """Texts → unnormalised ``text_embeds`` with the exported tower, verified against its manifest."""

    def __init__(self, folder: Path) -> None:
        self.manifest = load_text_manifest(folder)
        model = folder / self.manifest.model_file
        if file_sha256(model) != self.manifest.model_sha256:
            raise SystemExit(f"text model {model} does not match the sha256 in its manifest")
        self.tokens = TextTokens(
            folder / self.manifest.tokenizer_file, self.manifest.context_length, self.manifest.pad_id
        )
        self._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch: int = 64) -> np.ndarray:
        ids = self.tokens.encode(texts)
        parts = [
            np.asarray(
                self._session.run(
                    [self.manifest.output_name], {self.manifest.input_name: ids[i : i + batch]}
                )[0]
            )
            for i in range(0, len(ids), batch)
        ]
        return np.concatenate(parts).astype(np.float64)

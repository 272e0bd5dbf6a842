"""``clip-classifier classify DIR --head FILE|VERSION``: a folder of images classified on this machine,
with the functions' own decoding, embedder and head, without starting any stack (a CSV and a table).

Needs the ``image`` extra (onnxruntime, Pillow), as the upload function's image does.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clip_classifier.cli.tables import table
from clip_classifier.exceptions import ClassifierError, ConfigurationError
from clip_classifier.head.fit import ServedEmbedder, check_head_fits
from clip_classifier.head.forward import Head
from clip_classifier.storage import embedding_codec


@dataclass(frozen=True)
class Classified:
    file: str
    status: str
    top: list[tuple[str, float]]
    probabilities: dict[str, float]
    error: str | None = None


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigurationError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def classify_folder(folder: Path, head: Head, model_dir: Path) -> list[Classified]:
    """Every file under ``folder``: classified as the upload function would, or the reason it failed."""
    # The image stages load onnxruntime and Pillow: only this command needs them.
    from clip_classifier.image.preprocess import Preprocessor
    from clip_classifier.model.embedder import Embedder

    embedder = Embedder(model_dir / "model.onnx")
    check_head_fits(
        head,
        ServedEmbedder(output_dim=embedder.manifest.output_dim, model_sha256=embedder.manifest.model_sha256),
        location=f"head {head.version[:12]}",
    )
    preprocess = Preprocessor(embedder.manifest.transform)
    results = []
    for path in image_files(folder):
        name = str(path.relative_to(folder))
        try:
            pixels = preprocess(path.read_bytes()).pixels
        except ClassifierError as exc:
            results.append(Classified(name, "failed", [], {}, f"{exc.code}: {exc.message}"))
            continue
        except OSError as exc:
            results.append(Classified(name, "failed", [], {}, f"unreadable: {exc.strerror or exc}"))
            continue
        # Scored as the upload function scores: through the stored (float16) embedding.
        _, features = embedding_codec.round_trip(embedder.embed(pixels))
        prediction = head.predict(features)[0]
        results.append(
            Classified(
                name,
                "classified",
                prediction.top(3),
                dict(zip(head.classes, prediction.probabilities, strict=True)),
            )
        )
    return results


def as_csv(results: list[Classified], classes: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "status", "top_label", "top_probability", "error", *classes])
    for r in results:
        top = r.top[0] if r.top else ("", None)
        writer.writerow(
            [r.file, r.status, top[0], "" if top[1] is None else f"{top[1]:.6f}", r.error or "",
             *(f"{r.probabilities[c]:.6f}" if c in r.probabilities else "" for c in classes)]
        )  # fmt: skip
    return out.getvalue()


def as_table(results: list[Classified]) -> str:
    rows: list[list[Any]] = []
    for r in results:
        if r.status == "classified":
            second = f"{r.top[1][0]} {r.top[1][1]:.3f}" if len(r.top) > 1 else ""
            rows.append([r.file, r.status, r.top[0][0], r.top[0][1], second])
        else:
            rows.append([r.file, r.status, r.error or "", None, ""])
    return table(["file", "status", "top label", "p(top)", "second"], rows)

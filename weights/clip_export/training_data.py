"""Labelled training data for heads: image folders, a labels CSV (hard or soft labels), or feature files.

Images are embedded with the runtime's own preprocessing and embedder, and rounded as the upload function
stores and scores them (``embedding_codec.round_trip``): training features equal serving features to the
bit. Embeddings are cached on disk keyed by the file's sha256 and the model's sha256: a rerun embeds only new
or changed files. Unreadable images are listed and skipped, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clip_classifier.exceptions import ImageError
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.embedder import Embedder
from clip_classifier.storage import embedding_codec


class DataError(SystemExit):
    """Input the trainer cannot use: a clear message, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass
class Dataset:
    classes: list[str]
    features: np.ndarray  # [N, D] float32, as the embedder outputs them (the head normalises)
    targets: np.ndarray  # [N, K] float64 rows summing to 1 (one-hot for hard labels)
    sources: list[str]  # a path or "features:<file>#<row>" per row
    skipped: list[str] = field(default_factory=list)

    @property
    def hard(self) -> np.ndarray:
        return np.asarray(self.targets.argmax(axis=1))

    def fingerprint(self) -> str:
        """sha256 over the features and targets: what the head was trained on, whatever the paths."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.features, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.targets, dtype="<f8").tobytes())
        digest.update("\n".join(self.classes).encode())
        return digest.hexdigest()


@dataclass
class LabelledFile:
    path: Path
    target: dict[str, float]  # label -> weight, summing to 1


def read_class_file(path: Path) -> list[str]:
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [label for label in labels if label and not label.startswith("#")]


def folder_items(root: Path) -> list[LabelledFile]:
    """One sub-folder per class; files directly under ``root`` are ignored."""
    if not root.is_dir():
        raise DataError(f"--images {root} is not a folder")
    items = [
        LabelledFile(path, {folder.name: 1.0})
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    ]
    if not items:
        raise DataError(f"--images {root} has no files in class sub-folders (one sub-folder per class)")
    return items


def csv_items(path: Path) -> list[LabelledFile]:
    """``path,label`` or soft labels ``path,label:weight;label:weight`` (weights summing to 1)."""
    items = []
    with path.open(newline="", encoding="utf-8") as fh:
        for number, row in enumerate(csv.reader(fh), 1):
            if not row or row[0].startswith("#") or (number == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) != 2:
                raise DataError(f"{path}:{number}: expected 'path,label' or 'path,label:w;label:w'")
            target: dict[str, float] = {}
            for part in row[1].split(";"):
                label, _, weight = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "1")
                try:
                    target[label.strip()] = target.get(label.strip(), 0.0) + float(weight)
                except ValueError as exc:
                    raise DataError(f"{path}:{number}: weight {weight!r} is not a number") from exc
            total = sum(target.values())
            if abs(total - 1.0) > 1e-6 or min(target.values()) < 0:
                raise DataError(
                    f"{path}:{number}: soft label weights must be >= 0 and sum to 1, got {total:g}"
                )
            items.append(LabelledFile((path.parent / row[0].strip()).resolve(), target))
    if not items:
        raise DataError(f"{path}: no labelled rows")
    return items


class EmbeddingCache:
    """``cache_dir/<model sha256>-served/<file sha256>.npy``: one embedding per distinct file content and
    model, as the upload function scores it (older caches of unrounded embeddings are not reused)."""

    def __init__(self, cache_dir: Path, model_sha256: str) -> None:
        self.folder = cache_dir / f"{model_sha256}-served"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def get(self, digest: str) -> np.ndarray | None:
        path = self.folder / f"{digest}.npy"
        if not path.is_file():
            return None
        self.hits += 1
        return np.asarray(np.load(path))

    def put(self, digest: str, embedding: np.ndarray) -> None:
        self.misses += 1
        tmp = self.folder / f"{digest}.tmp.npy"
        np.save(tmp, embedding)
        tmp.replace(self.folder / f"{digest}.npy")


def _progress(items: Sequence[LabelledFile], quiet: bool) -> Iterable[LabelledFile]:
    if quiet:
        return items
    from tqdm import tqdm  # the 'train' extra

    # disable=None: a bar only on a terminal, not in CI logs.
    bar: Iterable[LabelledFile] = tqdm(items, desc="embedding", unit="img", file=sys.stderr, disable=None)
    return bar


def embed_items(
    items: Sequence[LabelledFile],
    classes: Sequence[str],
    model_dir: Path,
    cache_dir: Path,
    *,
    quiet: bool = False,
) -> Dataset:
    embedder = Embedder(model_dir / "model.onnx")
    preprocess = Preprocessor(embedder.manifest.transform)  # the deployed default ("auto")
    cache = EmbeddingCache(cache_dir, embedder.version)
    index = {label: i for i, label in enumerate(classes)}
    unknown = sorted({label for item in items for label in item.target} - set(index))
    if unknown:
        raise DataError(f"labels not among the classes: {', '.join(unknown)}")
    features, targets, sources, skipped = [], [], [], []
    started = time.perf_counter()
    for item in _progress(items, quiet):
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            skipped.append(f"{item.path} ({type(exc).__name__})")
            continue
        digest = hashlib.sha256(data).hexdigest()
        embedding = cache.get(digest)
        if embedding is None:
            try:
                # What the upload function scores: the embedding rounded as it is stored.
                embedding = embedding_codec.round_trip(embedder.embed(preprocess(data).pixels))[1][0]
            except ImageError as exc:
                skipped.append(f"{item.path} ({exc.code})")
                continue
            cache.put(digest, embedding)
        row = np.zeros(len(classes))
        for label, weight in item.target.items():
            row[index[label]] += weight
        features.append(embedding)
        targets.append(row)
        sources.append(str(item.path))
    if not features:
        raise DataError(
            "no readable image to train on" + (f"; skipped: {', '.join(skipped)}" if skipped else "")
        )
    if not quiet:
        seconds = time.perf_counter() - started
        rate = f", {cache.misses / seconds:.1f} images/s" if cache.misses and seconds > 0 else ""
        print(
            f"embedded {cache.misses} image(s), {cache.hits} from the cache ({cache.folder}){rate}",
            file=sys.stderr,
        )
    return Dataset(list(classes), np.stack(features).astype(np.float32), np.stack(targets), sources, skipped)


def features_file(path: Path, classes: Sequence[str] | None, model_sha256: str) -> Dataset:
    """An ``.npz`` with ``features`` [N, D], ``labels`` [N] and the ``model_sha256`` that computed them."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"--features {path}: not a readable .npz file ({exc})") from exc
    missing = {"features", "labels", "model_sha256"} - set(data.files)
    if missing:
        raise DataError(f"--features {path}: missing arrays {', '.join(sorted(missing))}")
    source_model = str(data["model_sha256"])
    if source_model != model_sha256:
        raise DataError(
            f"--features {path} were computed by model {source_model[:12]}…, not by --model-dir's "
            f"{model_sha256[:12]}…: features from another model live in another space"
        )
    labels = [str(x) for x in data["labels"]]
    names = list(classes) if classes else sorted(set(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DataError(f"--features {path}: labels not among the classes: {', '.join(unknown)}")
    features = np.asarray(data["features"], dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != len(labels):
        raise DataError(f"--features {path}: features must be [N, D] with one label per row")
    targets = np.zeros((len(labels), len(names)))
    targets[np.arange(len(labels)), [names.index(label) for label in labels]] = 1.0
    return Dataset(names, features, targets, [f"features:{path.name}#{i}" for i in range(len(labels))])


def merge(parts: Sequence[Dataset], expected_dim: int) -> Dataset:
    classes = parts[0].classes
    for part in parts:
        if part.features.shape[1] != expected_dim:
            raise DataError(f"features are {part.features.shape[1]}-d but the model outputs {expected_dim}")
    return Dataset(
        classes,
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.targets for p in parts]),
        [s for p in parts for s in p.sources],
        [s for p in parts for s in p.skipped],
    )

"""Labelled training data for heads: image folders, a labels CSV (hard or soft labels), or feature files.

Images are embedded with the runtime's own preprocessing and embedder, and rounded as the upload function
stores and scores them (``embedding_codec.round_trip``): training features equal serving features to the
bit. Embeddings are cached on disk keyed by the file's sha256 and the model's sha256: a rerun embeds only new
or changed files. Unreadable images are listed and skipped, never fatal.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import sys
import time
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clip_classifier.exceptions import ImageError
from clip_classifier.head.labels import classes_problem
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


def label(text: str) -> str:
    """A label as written in a file, folder name or CSV: trimmed and in Unicode NFC."""
    return unicodedata.normalize("NFC", text.strip())


def check_classes(classes: Sequence[str], where: str) -> None:
    """The runtime's label rules, checked before any work (a head that breaks them would be refused)."""
    problem = classes_problem(classes)
    if problem:
        raise DataError(f"{where}: {problem}")


def read_class_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"--classes {path}: cannot be read ({exc})") from exc
    labels = [label(line) for line in lines]
    labels = [text for text in labels if text and not text.startswith("#")]
    check_classes(labels, f"--classes {path}")
    return labels


def walk_files(folder: Path, skipped: list[str]) -> Iterator[Path]:
    """Every file under ``folder`` (sorted, hidden ones left out), without following links to folders; what
    cannot be listed or read — an unreadable folder, a broken link, a link loop — is added to ``skipped``."""

    def unlisted(error: OSError) -> None:
        skipped.append(f"{error.filename} (cannot be listed: {error.strerror})")

    for top, dirs, files in os.walk(folder, onerror=unlisted, followlinks=False):
        dirs.sort()
        for name in list(dirs):
            if Path(top, name).is_symlink():
                skipped.append(f"{Path(top, name)} (a link to a folder: not followed)")
        for name in sorted(files):
            path = Path(top, name)
            if name.startswith("."):
                continue
            if not path.is_file():  # a dangling link, or a link loop (ELOOP)
                skipped.append(f"{path} (a link to nothing readable)")
                continue
            yield path


def folder_items(root: Path, skipped: list[str]) -> list[LabelledFile]:
    """One sub-folder per class (its name is the label); files directly under ``root`` are ignored."""
    if not root.is_dir():
        raise DataError(f"--images {root} is not a folder")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"--images {root} cannot be listed ({exc.strerror})") from exc
    items = [
        LabelledFile(path, {label(folder.name): 1.0})
        for folder in folders
        for path in walk_files(folder, skipped)
    ]
    if not items:
        raise DataError(f"--images {root} has no files in class sub-folders (one sub-folder per class)")
    return items


def csv_items(path: Path) -> list[LabelledFile]:
    """``path,label`` or soft labels ``path,label:weight;label:weight`` (weights summing to 1)."""
    items = []
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"--labels {path}: cannot be read as a UTF-8 CSV file ({exc})") from exc
    for number, row in enumerate(rows, 1):
        if not row or row[0].startswith("#") or (number == 1 and row[0].strip().lower() == "path"):
            continue
        if len(row) != 2:
            raise DataError(f"{path}:{number}: expected 'path,label' or 'path,label:w;label:w'")
        target: dict[str, float] = {}
        for part in row[1].split(";"):
            name, _, weight = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "1")
            try:
                value = float(weight)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: weight {weight!r} is not a number") from exc
            if not math.isfinite(value) or value < 0:
                raise DataError(f"{path}:{number}: weight {weight!r} must be a finite number >= 0")
            target[label(name)] = target.get(label(name), 0.0) + value
        total = sum(target.values())
        if abs(total - 1.0) > 1e-6:
            raise DataError(f"{path}:{number}: soft label weights must sum to 1, got {total:g}")
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
    """A bar on a terminal; plain lines elsewhere (CI logs, a file), about every 10 % and 30 s."""
    if quiet:
        return items
    if sys.stderr.isatty():
        from tqdm import tqdm  # the 'train' extra

        bar: Iterable[LabelledFile] = tqdm(items, desc="embedding", unit="img", file=sys.stderr)
        return bar
    return _progress_lines(items)


def _progress_lines(items: Sequence[LabelledFile]) -> Iterator[LabelledFile]:
    total, started, shown = len(items), time.monotonic(), time.monotonic()
    step = max(1, total // 10)
    for done, item in enumerate(items):
        now = time.monotonic()
        if done and (done % step == 0 or now - shown > 30):
            left = (now - started) / done * (total - done)
            print(f"embedding: {done}/{total} images, about {left:.0f} s left", file=sys.stderr, flush=True)
            shown = now
        yield item
    print(f"embedding: {total}/{total} images", file=sys.stderr, flush=True)


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
        with np.load(path, allow_pickle=False) as npz:  # arrays load lazily: read them all here
            data = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"--features {path}: not a readable .npz file ({exc})") from exc
    missing = {"features", "labels", "model_sha256"} - set(data)
    if missing:
        raise DataError(f"--features {path}: missing arrays {', '.join(sorted(missing))}")
    source_model = str(data["model_sha256"])
    if source_model != model_sha256:
        raise DataError(
            f"--features {path} were computed by model {source_model[:12]}…, not by --model-dir's "
            f"{model_sha256[:12]}…: features from another model live in another space"
        )
    labels = [label(str(x)) for x in data["labels"]]
    names = list(classes) if classes else sorted(set(labels))
    check_classes(names, f"--features {path}")
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DataError(f"--features {path}: labels not among the classes: {', '.join(unknown)}")
    features = unit_rows(data["features"], f"--features {path}")
    if features.shape[0] != len(labels):
        raise DataError(f"--features {path}: {features.shape[0]} feature rows but {len(labels)} labels")
    targets = np.zeros((len(labels), len(names)))
    targets[np.arange(len(labels)), [names.index(label) for label in labels]] = 1.0
    return Dataset(names, features, targets, [f"features:{path.name}#{i}" for i in range(len(labels))])


def unit_rows(values: np.ndarray, where: str) -> np.ndarray:
    """``[N, D]`` numbers as float32 unit vectors, normalised in float64 as the API does (each row divided by
    its largest magnitude first), so features at any finite scale train as they are scored; anything else
    is a :class:`DataError` naming the row."""
    if values.ndim != 2 or values.dtype.kind not in "fiu":
        raise DataError(
            f"{where}: features must be an [N, D] array of numbers, got {values.dtype} {values.shape}"
        )
    rows = values.astype(np.float64)
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise DataError(f"{where}: row {int(np.argmin(finite))} has a value that is not a finite number")
    peak = np.abs(rows).max(axis=1, keepdims=True)
    if not (peak > 0).all():
        raise DataError(f"{where}: row {int(np.argmin(peak[:, 0] > 0))} is all zeros (it has no direction)")
    scaled = rows / peak
    unit: np.ndarray = (scaled / np.sqrt((scaled * scaled).sum(axis=1, keepdims=True))).astype(np.float32)
    return unit


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

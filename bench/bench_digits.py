"""Real labelled images end to end: scikit-learn's 1,797 handwritten digits → weights/train_head.py.

Writes the digits as 64×64 PNG class folders, trains all three heads on a model's embeddings (default the
tiny test model; pass the random-init ViT-B/32 export for the README's second row), and fits the anchor the
README quotes next to them: logistic regression on the raw 64 pixels, on the same seeded split with ``C``
chosen on the same validation rows. Needs the 'train' and 'export' extras::

    python -m bench.bench_digits --model-dir bench/.cache/vit-b-32-matmul/int8
    python -m bench.bench_digits --write-folders /tmp/digits    # only the PNG class folders, for the trainer
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from clip_export.head_training import C_GRID, LOGREG, stratified_split
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR

TRAINER = REPO_ROOT / "weights" / "train_head.py"


def write_digits(root: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PNG folders in the trainer's order (class folder, then file name); returns (pixels, labels) in it."""
    from sklearn.datasets import load_digits

    data = load_digits()
    chosen = range(len(data.target)) if limit is None else range(limit)
    order = sorted(chosen, key=lambda i: (str(data.target[i]), f"{i:04d}.png"))
    for i in order:
        folder = root / str(data.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (data.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((64, 64), Image.Resampling.NEAREST).save(folder / f"{i:04d}.png")
    return data.data[order] / 16.0, data.target[order]


def pixel_anchor(pixels: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Test top-1 of logistic regression on raw pixels, C chosen on validation accuracy."""
    from sklearn.linear_model import LogisticRegression

    split = stratified_split(labels, [str(d) for d in range(10)], seed)
    best: tuple[float, object] | None = None
    for c in C_GRID:
        model = LogisticRegression(C=c, **LOGREG).fit(pixels[split.train], labels[split.train])
        accuracy = float((model.predict(pixels[split.validation]) == labels[split.validation]).mean())
        if best is None or accuracy > best[0]:
            best = (accuracy, model)
    assert best is not None
    return float((best[1].predict(pixels[split.test]) == labels[split.test]).mean())  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=TINY_MODEL_DIR / "int8")
    parser.add_argument("--limit", type=int, help="only the first N digits (a quick run)")
    parser.add_argument("--head-type", default="all")
    parser.add_argument(
        "--write-folders",
        type=Path,
        metavar="DIR",
        help="write the digits as PNG class folders to DIR and stop",
    )
    args = parser.parse_args(argv)
    if args.write_folders is not None:
        _, labels = write_digits(args.write_folders, args.limit)
        print(f"wrote {len(labels)} digits as PNG class folders under {args.write_folders}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pixels, labels = write_digits(root / "digits", args.limit)
        result = subprocess.run(
            [
                sys.executable, str(TRAINER), "--images", str(root / "digits"), "--model-dir", str(args.model_dir),
                "--cache-dir", str(root / "cache"), "--head-type", args.head_type, "--target-precision", "0.95",
                "--report", str(root / "report"), "--out", str(root / "head.json"), "--quiet",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        print(result.stdout, end="")
        if result.returncode != 0:
            print(result.stderr, file=sys.stderr)
            return result.returncode
    print(f"anchor: logistic regression on the raw 64 pixels, test top-1 {pixel_anchor(pixels, labels):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

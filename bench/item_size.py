"""What the stored embedding's layout costs: bytes, the item's DynamoDB size and write units, and fidelity.

    python -m bench.item_size                                        # the tiny model's fixture embeddings
    python -m bench.item_size --model-dir weights/models/vit-b-32/int8

For each layout (float16, written before the cost round; int8, written now): the embedding's bytes, the
upload item's size by DynamoDB's rules and its write units, and — on the 200 CLIP-like vectors of the codec's
tests and on the model's embeddings of the 16 fixture images — the least cosine to float32 and the largest
probability change of the example head between the float32 embedding and what is stored.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cost_model import item_size, typical_item, write_units
from clip_classifier.arrays import F32
from clip_classifier.head.forward import Head
from clip_classifier.head.weights_format import parse_weights
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.embedder import Embedder
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.item_codec import serialize
from clip_local.paths import EXAMPLE_WEIGHTS, REPO_ROOT, TINY_MODEL_DIR

LAYOUTS: tuple[embedding_codec.Layout, ...] = ("float16", "int8")


def clip_like(count: int = 200, dim: int = 512, seed: int = 0) -> F32:
    """Roughly Gaussian, norms around 10, five large components: the codec tests' 200 vectors."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, dim)) * 0.45
    x[:, rng.integers(0, dim, 5)] *= 8
    return x.astype(np.float32)


def fixture_embeddings(model_dir: Path) -> F32:
    embedder = Embedder(model_dir / "model.onnx", threads=1)
    preprocessor = Preprocessor(embedder.manifest.transform, ImageLimits())
    files = [p for p in sorted((REPO_ROOT / "tests" / "fixtures" / "images").iterdir()) if p.is_file()]
    return np.concatenate([embedder.embed(preprocessor(p.read_bytes()).pixels) for p in files])


@dataclass(frozen=True)
class Fidelity:
    least_cosine: float
    largest_change: float


def fidelity(vectors: F32, layout: embedding_codec.Layout, head: Head) -> Fidelity:
    dim = vectors.shape[1]
    stored = np.concatenate(
        [embedding_codec.head_input(embedding_codec.encode(v, layout), dim) for v in vectors]
    )
    exact64, stored64 = vectors.astype(np.float64), stored.astype(np.float64)
    cosine = (exact64 * stored64).sum(1) / np.linalg.norm(exact64, axis=1) / np.linalg.norm(stored64, axis=1)
    _, exact = head.forward(vectors)
    _, rounded = head.forward(stored)
    return Fidelity(float(cosine.min()), float(np.abs(exact - rounded).max()))


def rows(model_dir: Path) -> list[tuple[str, int, int, int, Fidelity, Fidelity]]:
    head = Head(parse_weights(EXAMPLE_WEIGHTS.read_bytes()))
    fixtures = fixture_embeddings(model_dir)
    out = []
    for layout in LAYOUTS:
        codec = 1 if layout == "float16" else 2
        size = item_size(serialize(typical_item(head, embedding=True, layout=layout), codec=codec))
        out.append(
            (
                f"{layout} (codec {codec})",
                embedding_codec.encoded_size(head.input_dim, layout),
                size,
                write_units(size),
                fidelity(clip_like(dim=head.input_dim), layout, head),
                fidelity(fixtures, layout, head),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=TINY_MODEL_DIR / "int8")
    args = parser.parse_args(argv)
    print(
        f"{'layout':<18} {'embedding B':>11} {'item B':>7} {'WCU':>4} "
        f"{'cos (200)':>10} {'max Δp (200)':>13} {'cos (fixtures)':>15} {'max Δp (fixtures)':>18}"
    )
    print("-" * 103)
    for name, embedding_bytes, size, units, synthetic, fixtures in rows(args.model_dir):
        print(
            f"{name:<18} {embedding_bytes:>11} {size:>7} {units:>4} {synthetic.least_cosine:>10.8f} "
            f"{synthetic.largest_change:>13.2e} {fixtures.least_cosine:>15.8f} {fixtures.largest_change:>18.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

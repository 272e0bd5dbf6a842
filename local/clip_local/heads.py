"""A second head for trying the rescore without training one: the example head with its last linear layer
re-drawn from a seeded NumPy generator. Like the example head, it is meaningless; it only differs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from clip_classifier.head.weights_format import LinearLayer, WeightsDocument, document_sha256, parse_weights

from .paths import EXAMPLE_WEIGHTS


def reseeded_head(source: Path, seed: int) -> bytes:
    """``source``'s weights document with its final linear layer redrawn (seed ``seed``), re-hashed."""
    doc = parse_weights(source.read_bytes(), location=str(source))
    last = max(i for i, layer in enumerate(doc.layers) if isinstance(layer, LinearLayer))
    layer = doc.layers[last]
    assert isinstance(layer, LinearLayer)
    rng = np.random.default_rng(seed)
    rows, columns = len(layer.weight), len(layer.weight[0])
    bound = 1 / np.sqrt(columns)  # torch.nn.Linear's default initialisation range
    layers = list(doc.layers)
    layers[last] = LinearLayer(
        type="linear",
        weight=rng.uniform(-bound, bound, (rows, columns)).astype(np.float32).tolist(),
        bias=rng.uniform(-bound, bound, rows).astype(np.float32).tolist(),
    )
    provenance = doc.provenance.model_copy(
        update={
            "created_at": datetime.now(UTC),
            "exported_by": "clip_local.heads.reseeded_head",
            "training": {"example_only": True, "from": doc.content_sha256, "last_layer_seed": seed},
        }
    )
    changed = doc.model_copy(update={"layers": layers, "provenance": provenance})
    changed = changed.model_copy(update={"content_sha256": document_sha256(changed)})
    return changed.model_dump_json(exclude_none=True).encode()


def prototype_head(seed: int, *, nudge_of: bytes | None = None, nudge: float = 0.35) -> bytes:
    """A random prototype head of the example's 12 classes: each class a random unit direction, softmax
    over 30 × cosine. Unlike the example MLP, whose bias decides most answers, it spreads random features
    over every class, so comparing two of them shows agreement, flips and shifts as a real comparison does.
    With ``nudge_of`` (another such head), the directions are that head's moved by ``nudge`` of a new
    random draw: a candidate that agrees with it on most items. Meaningless labels, like the example's."""
    example = parse_weights(EXAMPLE_WEIGHTS.read_bytes(), location=str(EXAMPLE_WEIGHTS))
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(len(example.classes), example.input_dim))
    if nudge_of is not None:
        base = parse_weights(nudge_of).arrays()[0][0].astype(np.float64)
        directions = base / np.linalg.norm(base, axis=1, keepdims=True) + nudge * directions / np.sqrt(
            example.input_dim
        )
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    doc = WeightsDocument.model_validate(
        {
            "format": "clip-head-weights",
            "format_version": 1,
            "head_type": "prototype",
            "classes": list(example.classes),
            "input_dim": example.input_dim,
            "input_normalization": "l2",
            "layers": [
                {
                    "type": "linear",
                    "weight": (30.0 * directions).astype(np.float32),
                    "bias": np.zeros(len(example.classes), np.float32),
                },
                {"type": "softmax"},
            ],
            "output": "softmax",
            "provenance": {
                "created_at": datetime.now(UTC),
                "exported_by": "clip_local.heads.prototype_head",
                "training": {"example_only": True, "seed": seed, "nudged": nudge_of is not None},
            },
            "content_sha256": "0" * 64,
        }
    )
    doc = doc.model_copy(update={"content_sha256": document_sha256(doc)})
    return doc.model_dump_json(exclude_none=True).encode()


def main(argv: list[str] | None = None) -> int:
    """``python -m clip_local.heads --seed N [--nudge-of FILE] --out FILE``: a random prototype head to try
    the registry with (heads add / evaluate / activate) without training one."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m clip_local.heads", description=main.__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--nudge-of", type=Path, help="a head of this kind to stay close to (a candidate)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    raw = prototype_head(args.seed, nudge_of=args.nudge_of.read_bytes() if args.nudge_of else None)
    args.out.write_bytes(raw)
    print(
        f"wrote {args.out}: head {parse_weights(raw).content_sha256[:12]} (random prototypes; meaningless labels)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

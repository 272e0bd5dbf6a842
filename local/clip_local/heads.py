"""A second head for trying the rescore without training one: the example head with its last linear layer
re-drawn from a seeded NumPy generator. Like the example head, it is meaningless; it only differs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from clip_classifier.head.weights_format import LinearLayer, document_sha256, parse_weights


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

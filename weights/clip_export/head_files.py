"""Writing heads in the runtime's weights format: one builder for every head the offline tools make."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from clip_classifier.head.weights_format import FORMAT_NAME, FORMAT_VERSION, content_sha256, parse_weights


def head_document(
    classes: Sequence[str],
    linears: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    output: str,
    head_type: str,
    training: dict[str, Any],
    exported_by: str,
    input_normalization: str = "l2",
    extra: dict[str, Any] | None = None,
    embedder_sha256: Sequence[str] = (),
) -> dict[str, Any]:
    """``linear (relu linear)* final`` as a weights document, verified by the runtime's own parser.

    ``linears`` are ``(weight [out, in], bias [out])`` pairs; the values written are their float32 roundings,
    and the content hash is computed over exactly those. ``embedder_sha256`` names the image models whose
    features the head was made for: every function serving another model refuses it.
    """
    pairs = [(np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)) for w, b in linears]
    layers: list[dict[str, Any]] = []
    for index, (weight, bias) in enumerate(pairs):
        if index:
            layers.append({"type": "relu"})
        layers.append({"type": "linear", "weight": weight.tolist(), "bias": bias.tolist()})
    final = "softmax" if output == "softmax" else "sigmoid"
    layers.append({"type": final})
    doc: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "head_type": head_type,
        "classes": list(classes),
        "input_dim": int(pairs[0][0].shape[1]),
        "input_normalization": input_normalization,
        "layers": layers,
        "output": output,
        **(extra or {}),
        "provenance": {
            "embedder_sha256": list(dict.fromkeys(embedder_sha256)),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exported_by": exported_by,
            "training": training,
        },
        "content_sha256": content_sha256(
            classes=list(classes),
            input_dim=int(pairs[0][0].shape[1]),
            input_normalization=input_normalization,
            layer_types=[layer["type"] for layer in layers],
            linear=pairs,
            output=output,
            ambiguity=_thresholds(extra),
        ),
    }
    parse_weights(json.dumps(doc), location="<new head>")  # the runtime's own validation, before any write
    return doc


def _thresholds(extra: dict[str, Any] | None) -> tuple[float, float] | None:
    guard = (extra or {}).get("ambiguity")
    return None if guard is None else (float(guard["min_top_probability"]), float(guard["min_margin"]))

"""Export a PyTorch classification head to the JSON weights format read by ``clip_classifier``.

Needs the ``export`` extra (torch). The checkpoint is loaded with ``torch.load(weights_only=True)``: it must
be a ``state_dict`` (or a dict holding one under ``state_dict``/``model_state_dict``) of an ``nn.Sequential``
or of a module with named ``nn.Linear`` layers, in forward order. No code is ever unpickled.

Examples::

    # a real head from training
    python weights/export_mlp_weights.py --checkpoint head.pt --classes classes.txt --out head.json

    # offline: a seeded random-init MLP 512-256-128-12 (how weights/example/example_head.json was made)
    python weights/export_mlp_weights.py --random-init --seed 0 --classes weights/example/classes.txt \\
        --out weights/example/example_head.json --golden-out weights/example/golden_head.json \\
        --note "EXAMPLE ONLY: random weights, not trained; for the local run and tests"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clip_classifier.head.weights_format import FORMAT_NAME, FORMAT_VERSION, content_sha256, parse_weights

DEFAULT_DIMS = (512, 256, 128)


def load_labels(path: Path) -> list[str]:
    """Class labels from a JSON list or a text file with one label per line, in output order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        labels = json.loads(text)
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise SystemExit(f"{path}: expected a list of class labels")
    return labels


def linear_layers(state: dict[str, Any]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """The linear layers of a state_dict in forward order: (name, weight [out,in], bias [out])."""
    for wrapper in ("state_dict", "model_state_dict"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    names = [k[: -len(".weight")] for k, v in state.items() if k.endswith(".weight") and v.ndim == 2]
    if not names:
        raise SystemExit("checkpoint has no 2-D '*.weight' tensors: is it a state_dict of a head?")
    if all(re.fullmatch(r"(.*\.)?\d+", n) for n in names):
        # nn.Sequential: order by the numeric index, not by the dict's order.
        names.sort(key=lambda n: int(n.rsplit(".", 1)[-1]))
    layers = []
    for name in names:
        if f"{name}.bias" not in state:
            raise SystemExit(f"linear layer '{name}' has no bias")
        layers.append((name, state[f"{name}.weight"].float(), state[f"{name}.bias"].float()))
    return layers


def build_reference(layers: list[tuple[str, torch.Tensor, torch.Tensor]], output: str) -> nn.Sequential:
    """The torch.nn module the JSON describes, used as the parity reference (dropout is training-only)."""
    modules: list[nn.Module] = []
    for i, (_, weight, bias) in enumerate(layers):
        linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
        modules.append(linear)
        if i < len(layers) - 1:
            modules.append(nn.ReLU())
    modules.append(nn.Sigmoid() if output == "sigmoid_normalized" else nn.Softmax(dim=-1))
    return nn.Sequential(*modules).eval()


def reference_forward(
    model: nn.Sequential, x: torch.Tensor, normalization: str, output: str
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        if normalization == "l2":
            x = torch.nn.functional.normalize(x, dim=-1)
        scores = model(x)
        probs = scores / scores.sum(dim=-1, keepdim=True) if output == "sigmoid_normalized" else scores
    return scores, probs


def _short(values: torch.Tensor) -> list[Any]:
    """Shortest decimal that round-trips each float32 exactly (about half the size of repr(float))."""
    arr = values.detach().cpu().numpy().astype(np.float32)
    if arr.ndim == 1:
        return [float(str(v)) for v in arr]
    return [_short(torch.from_numpy(row)) for row in arr]


def random_init(seed: int, n_classes: int, dims: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """A seeded, untrained head with the production architecture (dropout included, as in training)."""
    torch.manual_seed(seed)
    modules: list[nn.Module] = []
    widths = [*dims, n_classes]
    for i in range(len(widths) - 1):
        modules.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            modules += [nn.ReLU(), nn.Dropout(0.3)]
    modules.append(nn.Sigmoid())
    return nn.Sequential(*modules).state_dict()


def export(args: argparse.Namespace) -> dict[str, Any]:
    labels = load_labels(args.classes)
    if args.random_init:
        state: dict[str, Any] = random_init(args.seed, len(labels), (args.input_dim, *DEFAULT_DIMS[1:]))
        source_sha = None
        training: dict[str, Any] = {"random_init": True, "seed": args.seed}
    else:
        raw = args.checkpoint.read_bytes()
        source_sha = hashlib.sha256(raw).hexdigest()
        # weights_only=True: tensors and plain containers only, never arbitrary pickled code.
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise SystemExit("checkpoint must hold a state_dict (a dict of tensors)")
        training = {}
    if args.note:
        training["note"] = args.note
    if args.training_info:
        training.update(json.loads(args.training_info))

    layers = linear_layers(OrderedDict(state))
    layer_types: list[str] = []
    json_layers: list[dict[str, Any]] = []
    for i, (_, weight, bias) in enumerate(layers):
        json_layers.append({"type": "linear", "weight": _short(weight), "bias": _short(bias)})
        layer_types.append("linear")
        if i < len(layers) - 1:
            json_layers.append({"type": "relu"})
            layer_types.append("relu")
    final = "sigmoid" if args.output == "sigmoid_normalized" else "softmax"
    json_layers.append({"type": final})
    layer_types.append(final)

    input_dim = int(layers[0][1].shape[1])
    # Hash exactly the float32 values written to JSON.
    linear_np = [
        (np.asarray(layer["weight"], dtype=np.float32), np.asarray(layer["bias"], dtype=np.float32))
        for layer in json_layers
        if layer["type"] == "linear"
    ]
    doc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "head_type": "mlp" if len(layers) > 1 else "logreg",
        "classes": labels,
        "input_dim": input_dim,
        "input_normalization": args.input_normalization,
        "layers": json_layers,
        "output": args.output,
        "provenance": {
            "source_checkpoint_sha256": source_sha,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exported_by": "weights/export_mlp_weights.py",
            "training": training,
        },
        "content_sha256": content_sha256(
            classes=labels,
            input_dim=input_dim,
            input_normalization=args.input_normalization,
            layer_types=layer_types,
            linear=linear_np,
            output=args.output,
        ),
    }
    encoded = json.dumps(doc, separators=(",", ":"))
    parse_weights(encoded, location=str(args.out))  # the runtime's own validation, before anything is written
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(encoded + "\n", encoding="utf-8")

    if args.golden_out:
        model = build_reference(layers, args.output)
        gen = torch.Generator().manual_seed(args.seed + 1)
        x = torch.randn(args.golden_count, input_dim, generator=gen)
        scores, probs = reference_forward(model, x, args.input_normalization, args.output)
        golden = {
            "about": "torch.nn reference outputs for the weights file beside this one "
            "(weights/export_mlp_weights.py --golden-out)",
            "weights_content_sha256": doc["content_sha256"],
            "inputs": _short(x),
            "scores": _short(scores),
            "probabilities": _short(probs),
        }
        args.golden_out.write_text(json.dumps(golden, separators=(",", ":")) + "\n", encoding="utf-8")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="state_dict saved with torch.save")
    source.add_argument("--random-init", action="store_true", help="seeded untrained D-256-128-N head")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--input-dim",
        type=int,
        default=DEFAULT_DIMS[0],
        help="with --random-init: the embedder's output size D (512 for B/32 and B/16, 768 for L/14)",
    )
    parser.add_argument("--classes", type=Path, required=True, help="labels: .txt (one a line) or .json list")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--input-normalization", choices=["l2", "none"], default="l2")
    parser.add_argument("--output", choices=["sigmoid_normalized", "softmax"], default="sigmoid_normalized")
    parser.add_argument("--note", default="", help="free text stored in provenance.training.note")
    parser.add_argument("--training-info", default="", help="JSON object merged into provenance.training")
    parser.add_argument("--golden-out", type=Path, help="also write torch reference outputs for tests")
    parser.add_argument("--golden-count", type=int, default=16)
    args = parser.parse_args(argv)
    doc = export(args)
    n_params = sum(
        len(layer["bias"]) * (1 + len(layer["weight"][0])) for layer in doc["layers"] if "bias" in layer
    )
    print(
        f"wrote {args.out}: {len(doc['classes'])} classes, {n_params} parameters, sha256 {doc['content_sha256']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

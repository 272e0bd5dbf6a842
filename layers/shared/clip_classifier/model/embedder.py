"""The CLIP image embedder: one onnxruntime session per container.

The model file is verified against its manifest's sha256 before the session is built. Input/output names
and the output dimension come from the model and manifest, so a B/16 or L/14 export works unchanged.
Threads: ``intra_op_num_threads`` is set to the CPUs this process may really use (Lambda grants vCPUs in
proportion to memory; the affinity mask and cgroup quota say how many), ``inter_op_num_threads=1``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from clip_classifier.arrays import F32
from clip_classifier.exceptions import ModelFormatError, ModelIntegrityError, ModelNotFoundError
from clip_classifier.model.cpu_features import CpuFeatures, detect_cpu_features
from clip_classifier.model.manifest import ModelManifest, file_sha256, load_manifest

# onnxruntime's load errors derive from Exception directly, not from RuntimeError.
_ORT_ERRORS: tuple[type[Exception], ...] = (
    *(
        getattr(ort_state, name)
        for name in (
            "Fail",
            "InvalidArgument",
            "InvalidGraph",
            "InvalidProtobuf",
            "NoSuchFile",
            "RuntimeException",
        )
        if hasattr(ort_state, name)
    ),
    RuntimeError,
    ValueError,
)


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2/v1 CPU quota when one is set."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_cpu_quota() -> float | None:
    try:
        max_text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if max_text and max_text[0] != "max":
            return int(max_text[0]) / int(max_text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def int8_path_warning(manifest: ModelManifest, here: CpuFeatures | None) -> str | None:
    """Why this CPU may not reproduce the export's int8 fidelity figures, or None when it should.

    onnxruntime picks its int8 kernels by instruction set (VNNI, AVX-512, AVX2); their numerics differ, so
    figures measured on one family are not proof for another.
    """
    report = manifest.quantization_report
    if manifest.quantization == "none" or report is None or report.cpu is None or here is None:
        return None
    measured, running = report.cpu.architecture, here.architecture
    if measured and running and measured != running:
        return (
            f"the int8 model was exported and measured on {measured} ({report.cpu.int8_path}), this function "
            f"runs on {running} ({here.int8_path}): export the model on {running} for an {running} "
            "deployment (docs/deploy.md, Architecture)"
        )
    if here.int8_path == report.cpu.int8_path:
        return None
    return (
        f"the int8 model's fidelity was measured on a {report.cpu.int8_path} CPU, this one takes the "
        f"{here.int8_path} path: re-run the export's recipe comparison on this CPU family to confirm it"
    )


class Embedder:
    def __init__(self, model_path: Path, manifest_path: Path | None = None, *, threads: int = 0) -> None:
        manifest_path = manifest_path or model_path.with_name("manifest.json")
        if not model_path.is_file():
            raise ModelNotFoundError(f"model file {model_path} does not exist")
        self.manifest: ModelManifest = load_manifest(manifest_path)
        self.threads = threads or available_cpus()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No arena: one image per call needs little scratch memory, and the arena only grows the peak RSS.
        options.enable_cpu_mem_arena = False
        # Cold start: hash the file while onnxruntime builds the session (both release the GIL); the
        # session is thrown away unless the hash matches, so nothing is ever served from an unverified file.
        with ThreadPoolExecutor(max_workers=1) as pool:
            digest = pool.submit(file_sha256, model_path)
            try:
                session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
            except _ORT_ERRORS as exc:
                session_error: Exception | None = exc
            else:
                session_error = None
            actual = digest.result()
        if actual != self.manifest.model_sha256:
            raise ModelIntegrityError(
                f"model file {model_path} has sha256 {actual} but its manifest declares {self.manifest.model_sha256}"
            )
        if session_error is not None:
            raise ModelFormatError(
                f"onnxruntime cannot load {model_path}: {session_error}"
            ) from session_error
        self.session = session
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if self.manifest.input_name not in inputs or self.manifest.output_name not in outputs:
            raise ModelFormatError(
                f"model {model_path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; the manifest "
                f"expects {self.manifest.input_name!r} → {self.manifest.output_name!r}"
            )
        declared = outputs[self.manifest.output_name].shape[-1]
        if isinstance(declared, int) and declared != self.manifest.output_dim:
            raise ModelFormatError(
                f"model outputs {declared} values but the manifest says {self.manifest.output_dim}"
            )
        self.input_name = self.manifest.input_name
        self.output_name = self.manifest.output_name
        self.output_dim = self.manifest.output_dim
        self.version = self.manifest.model_sha256
        self.cpu_warning = int8_path_warning(self.manifest, detect_cpu_features())

    def embed(self, pixels: F32) -> F32:
        """``[N, 3, H, W]`` float32 → ``[N, output_dim]`` float32 (not normalized).

        With a dynamically quantized (int8) model the activation scale is computed per call, so an image's
        embedding depends slightly on the other images in the batch; the upload pipeline embeds one image
        per call, which keeps every result reproducible.
        """
        result = self.session.run([self.output_name], {self.input_name: pixels})[0]
        return np.asarray(result, dtype=np.float32)

"""The architecture and instruction sets that decide which int8 kernels onnxruntime runs (and so its int8
numerics).

onnxruntime's quantized matrix products take a different path on AVX2, AVX-512 and AVX-512/AVX VNNI CPUs,
and warns that U8S8 products on AVX2/AVX-512 without VNNI can saturate: the same int8 model can give
slightly different embeddings on two Lambda hosts. On arm64 (Graviton) it has kernels of its own (dot
product, i8mm). The export records the machine and features its fidelity figures were measured on; the
embedder compares them with the CPU it loads on, so an arm64 deployment of a model exported on x86_64 says
so at cold start.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Int8Path = Literal["vnni", "avx512", "avx2", "baseline", "arm64-i8mm", "arm64-dotprod", "arm64"]
#: ``platform.machine()`` spellings of the two Lambda architectures.
ARM64_MACHINES = frozenset({"aarch64", "arm64"})


def lambda_architecture(machine: str) -> str:
    """``x86_64`` or ``arm64``, as Lambda names them (``aarch64`` is Linux's name for arm64)."""
    return "arm64" if machine.lower() in ARM64_MACHINES else machine


class CpuFeatures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    avx2: bool
    avx512: bool
    vnni: bool
    #: ``platform.machine()`` where it was read (absent in manifests exported before it was recorded).
    machine: str | None = None
    #: arm64: the SDOT/UDOT and int8 matrix-multiply instructions onnxruntime's arm64 kernels use.
    dotprod: bool = False
    i8mm: bool = False

    @property
    def architecture(self) -> str | None:
        return lambda_architecture(self.machine) if self.machine else None

    @property
    def int8_path(self) -> Int8Path:
        if self.architecture == "arm64":
            return "arm64-i8mm" if self.i8mm else "arm64-dotprod" if self.dotprod else "arm64"
        if self.vnni:
            return "vnni"
        if self.avx512:
            return "avx512"
        return "avx2" if self.avx2 else "baseline"


def detect_cpu_features(
    cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None
) -> CpuFeatures | None:
    """The first CPU's flags (x86: ``flags``, arm64: ``Features``), or None where ``/proc/cpuinfo`` does not
    exist (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags = set(line.partition(":")[2].split())
            break
    return CpuFeatures(
        avx2="avx2" in flags,
        avx512="avx512f" in flags and "avx512bw" in flags,
        vnni="avx512_vnni" in flags or "avx_vnni" in flags,
        machine=machine or platform.machine(),
        dotprod="asimddp" in flags,
        i8mm="i8mm" in flags,
    )

"""The x86 instruction sets that decide which int8 kernels onnxruntime runs (and so its int8 numerics).

onnxruntime's quantized matrix products take a different path on AVX2, AVX-512 and AVX-512/AVX VNNI CPUs,
and warns that U8S8 products on AVX2/AVX-512 without VNNI can saturate: the same int8 model can give
slightly different embeddings on two Lambda hosts. The export records the features its fidelity figures
were measured on; the embedder compares them with the CPU it loads on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

Int8Path = Literal["vnni", "avx512", "avx2", "baseline"]


class CpuFeatures(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    avx2: bool
    avx512: bool
    vnni: bool

    @property
    def int8_path(self) -> Int8Path:
        if self.vnni:
            return "vnni"
        if self.avx512:
            return "avx512"
        return "avx2" if self.avx2 else "baseline"


def detect_cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFeatures | None:
    """The first CPU's flags, or None where ``/proc/cpuinfo`` does not exist (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    return CpuFeatures(
        avx2="avx2" in flags,
        avx512="avx512f" in flags and "avx512bw" in flags,
        vnni="avx512_vnni" in flags or "avx_vnni" in flags,
    )

"""Peak memory and wall time of decoding the hardest inputs, each in a fresh process.

Every case's bytes are written to a file; a new interpreter loads the preprocessing, reads the file and
decodes + preprocesses it exactly as the upload function does (limits at the template's defaults), then
reports the outcome, the wall time and the process's peak RSS (VmHWM). Run ``python -m bench.decode_limits`` (from the repository root)
for the table; ``tests/unit/benchmarks/test_decode_limits.py`` runs it with loose bounds.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from clip_classifier.image.limits import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from clip_local.paths import TINY_MODEL_DIR
from tests.corpus.images import progressive_scans, round_two_cases

CHILD = """
import json, sys, time
from pathlib import Path
from clip_classifier.exceptions import ImageError
from clip_classifier.model.manifest import load_manifest
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor

def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
pre = Preprocessor(load_manifest(Path(sys.argv[2])).transform,
                   ImageLimits(max_bytes=int(sys.argv[3]), max_pixels=int(sys.argv[4])))
data = Path(sys.argv[1]).read_bytes()
before = status("VmRSS")
start = time.perf_counter()
try:
    pre(data)
    outcome = "classified"
except ImageError as exc:
    outcome = exc.code
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - start,
                  "rss_before_mb": before, "peak_rss_mb": status("VmHWM")}))
"""


def rgba_40mp_rotated() -> bytes:
    """40,000,000 RGBA pixels (the pixel limit) with EXIF orientation 6 (rotate 90°)."""
    width, height = 6400, 6250
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[..., 0] = x
    rgba[..., 1] = y
    rgba[..., 2] = (x + y) / 2
    rgba[..., 3] = 200
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG", compress_level=1, exif=exif.tobytes())
    return out.getvalue()


def cases() -> list[tuple[str, Callable[[], bytes]]]:
    return [
        ("40 MP RGBA PNG, EXIF rotation 6", rgba_40mp_rotated),
        # 6324² ≤ 40,000,000: the most scan work the limits let through.
        ("40 MP progressive JPEG, 100 scans (the limit)", lambda: progressive_scans(100, size=6324)),
        *((case.case, case.payload) for case in round_two_cases()),
    ]


def measure(payload: bytes, model_dir: Path = TINY_MODEL_DIR / "int8") -> dict[str, float | str]:
    with tempfile.NamedTemporaryFile(suffix=".img") as fh:
        fh.write(payload)
        fh.flush()
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                fh.name,
                str(model_dir / "manifest.json"),
                str(DEFAULT_MAX_IMAGE_BYTES),
                str(DEFAULT_MAX_IMAGE_PIXELS),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    measured: dict[str, float | str] = json.loads(result.stdout.strip().splitlines()[-1])
    measured["bytes"] = len(payload)
    return measured


def run() -> list[tuple[str, dict[str, float | str]]]:
    return [(name, measure(make())) for name, make in cases()]


def render(rows: list[tuple[str, dict[str, float | str]]]) -> str:
    lines = [
        f"{'case':<44} {'bytes':>10} {'outcome':<20} {'seconds':>8} {'peak RSS MB':>12}",
        "-" * 98,
    ]
    for name, m in rows:
        lines.append(
            f"{name:<44} {m['bytes']:>10} {m['outcome']!s:<20} {float(m['seconds']):>8.2f} "
            f"{float(m['peak_rss_mb']):>12.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(render(run()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

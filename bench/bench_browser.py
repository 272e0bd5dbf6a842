"""The browser client's size and speed in headless Chromium, for the tiny test model and the int8 ViT-B/32.

    python -m bench.bench_browser                 # both (ViT-B/32: the random-init export, built once)
    python -m bench.bench_browser --tiny-only

For each model: the bytes the page downloads (model; onnxruntime-web's WASM and script), the time from
opening the page to the model being ready and to the first embedding, and the per-image decode,
preprocess and embed times (medians over the fixtures Chromium decodes, three passes). Next to it, the same
model's embed time in onnxruntime on this machine (one thread), as the reference. Needs web/node_modules and
Debian's chromium, like tests/integration/test_browser.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_pipeline import ensure_model
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.embedder import Embedder
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR, WEB_DIR
from clip_local.stack import local_stack

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
DECODABLE = [p for p in sorted(FIXTURES.iterdir()) if p.is_file() and p.suffix not in (".heic", ".tiff")]
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"


def native_embed_ms(model_dir: Path) -> float:
    embedder = Embedder(model_dir / "model.onnx", threads=1)
    preprocessor = Preprocessor(embedder.manifest.transform, mode="exact")
    pixels = [preprocessor(p.read_bytes()).pixels for p in DECODABLE]
    embedder.embed(pixels[0])
    times = []
    for _ in range(3):
        for tensor in pixels:
            start = time.perf_counter()
            embedder.embed(tensor)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(model_dir: Path, passes: int = 3) -> dict[str, Any]:
    with (
        local_stack(model_dir=model_dir, quiet=True, api_key="bench-key") as stack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        files = [str(p) for p in DECODABLE] * passes
        plan = Path(tmp) / "plan.json"
        out = Path(tmp) / "out.json"
        plan.write_text(
            json.dumps(
                {"scenarios": [{"name": "bench", "url": f"{stack.api.url}/#key=bench-key", "files": files}]}
            )
        )
        subprocess.run(
            ["node", str(WEB_DIR / "e2e" / "drive.mjs"), str(plan), str(out)],
            check=True,
            cwd=WEB_DIR,
            timeout=1800,
        )
        (run,) = json.loads(out.read_text())
    demo = run["demo"]
    if not demo["ready"]:
        raise RuntimeError(f"the model did not load: {run['status']}")
    # The first pass warms the page up (JIT, WASM); the later passes are the steady state.
    steady = [
        r["ms"] for r in demo["results"][len(DECODABLE) if passes > 1 else 0 :] if r["status"] == "classified"
    ]
    wasm = ORT_DIST / "ort-wasm-simd-threaded.wasm"
    script = ORT_DIST / "ort.wasm.min.mjs"
    return {
        "model": model_dir.parent.name,
        "model_bytes": demo["model"]["bytes"],
        "runtime_bytes": wasm.stat().st_size + script.stat().st_size,
        "threads": demo["model"]["threads"],
        "ready_ms": demo["model"]["loadMs"],
        "first_embedding_ms": demo["firstEmbeddingMs"],
        "decode_ms": statistics.median(m["decode"] for m in steady),
        "preprocess_ms": statistics.median(m["preprocess"] for m in steady),
        "embed_ms": statistics.median(m["embed"] for m in steady),
        "native_embed_ms": native_embed_ms(model_dir),
    }


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | model file | onnxruntime-web (WASM + script) | threads | page → model ready | page → first embedding "
        "| per image: decode / preprocess / embed | onnxruntime native embed (1 thread) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['model_bytes'] / 1e6:.1f} MB | {r['runtime_bytes'] / 1e6:.1f} MB | {r['threads']} "
            f"| {r['ready_ms']:.0f} ms | {r['first_embedding_ms']:.0f} ms "
            f"| {r['decode_ms']:.0f} / {r['preprocess_ms']:.0f} / {r['embed_ms']:.0f} ms | {r['native_embed_ms']:.1f} ms |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny-only", action="store_true", help="skip the ViT-B/32 (which needs torch once)")
    args = parser.parse_args(argv)
    models = [TINY_MODEL_DIR / "int8"]
    if not args.tiny_only:
        models.append(ensure_model("vit-b-32")[0] / "int8")
    print(render([measure(model) for model in models]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The browser client end to end, in headless Chromium (web/e2e/drive.mjs) against the local stack.

The same fixture images are classified twice: by the upload path (server side, S3 → the upload function)
and by the demo page (embedded in the page with onnxruntime-web, scored through POST /v1/scores). The
page's results must equal the server's within 1e-3, its embeddings must have cosine ≥ 0.999 to the server's
with the same top-1 label, and its preprocessing is compared with the Python exact path pixel by pixel
(figures printed; the README quotes them). A wrong API key, a file the browser cannot decode and a page on
another origin (allowed by CORS, and not) each show what they should.

Needs Debian's chromium and web/node_modules (``make test`` installs the latter; ``.ci/run`` both). Without
them the test is skipped — unless REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import center_crop, open_image, resize_size, to_rgb
from clip_classifier.model.manifest import load_manifest
from clip_classifier.storage import embedding_codec
from clip_classifier.storage.picture_id import picture_id_for_key
from clip_local.apigw import LocalApi
from clip_local.moto_server import free_port
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR, WEB_DIR
from clip_local.stack import LocalStack, local_stack, web_mounts

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
FILES = sorted(p for p in FIXTURES.iterdir() if p.is_file())
#: What Chromium cannot decode (the server can: pi-heif, Pillow's TIFF).
BROWSER_UNSUPPORTED = {"iphone.heic", "scan.tiff"}
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
DRIVER = WEB_DIR / "e2e" / "drive.mjs"


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if shutil.which("node") is None:
        return "no Node.js"
    if not (WEB_DIR / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules is not installed (make test runs npm ci in web/)"
    return None


missing = _browser_missing()
if missing and os.environ.get("REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"REQUIRE_BROWSER=1 but {missing}")
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")


def drive(scenarios: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    plan, out = tmp_path / "plan.json", tmp_path / "out.json"
    plan.write_text(json.dumps({"scenarios": scenarios}))
    result = subprocess.run(
        ["node", str(DRIVER), str(plan), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=WEB_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs: list[dict[str, Any]] = json.loads(out.read_text())
    return runs


@pytest.fixture(scope="module")
def page_origin() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack(page_origin: int) -> Iterator[LocalStack]:
    """The local stack with every fixture classified by the upload path, CORS allowing one other origin."""
    env = {"CORS_ALLOW_ORIGINS": f"http://127.0.0.1:{page_origin}"}
    with local_stack(
        model_dir=TINY_MODEL_DIR / "int8", quiet=True, api_key="e2e-key", extra_env=env
    ) as running:
        for path in FILES:
            assert running.upload_file(path.name, path.read_bytes())
        yield running


def python_crop(path: Path) -> np.ndarray:
    """The Python exact path's cropped 8-bit RGB for a file (what the tensor is made from)."""
    transform = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").transform
    rgb = to_rgb(open_image(path.read_bytes(), ImageLimits()))
    width, height = resize_size(rgb.width, rgb.height, transform.shortest_edge)
    resized = rgb.resize((width, height), resample=Image.Resampling.BICUBIC)
    return center_crop(np.asarray(resized), transform.crop_height, transform.crop_width)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_page_classifies_like_the_server_and_says_clearly_what_it_cannot(
    stack: LocalStack, tmp_path: Path
) -> None:
    url = stack.api.url
    runs = drive(
        [
            {
                "name": "all",
                "url": f"{url}/?debug=1#key=e2e-key",
                "files": [str(p) for p in FILES],
                "screenshot": str(tmp_path / "demo.png"),
            },
            {
                "name": "wrong key",
                "url": f"{url}/#key=not-the-key",
                "files": [str(FIXTURES / "small_rgb.png")],
            },
        ],
        tmp_path,
    )
    everything, wrong_key = runs
    assert everything["demo"]["ready"], everything["status"]
    # The page names the head the API serves (GET /v1/model): its version and where it came from.
    served = stack.score.function().service.weights.get()
    assert everything["demo"]["head"]["version"] == served.version
    assert everything["headStatus"].startswith(
        f"head {served.version[:12]} ({served.head_type}, 12 classes): "
    )
    assert "random example head (its labels mean nothing)" in everything["headStatus"]
    by_name = {r["name"]: r for r in everything["demo"]["results"]}
    cards = {c["file"]: c["text"] for c in everything["cards"]}
    rows = []
    for path in FILES:
        result = by_name[path.name]
        if path.name in BROWSER_UNSUPPORTED:
            assert result["status"] == "error" and result["errorKind"] == "UnsupportedImageError"
            assert "the browser cannot decode this " in cards[path.name]
            continue
        assert result["status"] == "classified", (path.name, result.get("error"))
        server = stack.result(picture_id_for_key(stack.key_prefix + path.name, stack.key_prefix))
        assert server is not None and server.probabilities is not None and server.embedding is not None
        shown = result["result"]["probabilities"]
        gap = max(abs(shown[c] - server.probabilities[c]) for c in server.probabilities)
        assert gap <= 1e-3, (path.name, gap)
        assert result["result"]["topLabel"] == server.top_label, path.name
        assert result["stored"]["pictureId"] == f"browser-{path.name}"
        similarity = cosine(
            np.asarray(result["embedding"]), embedding_codec.head_input(server.embedding, 512)[0]
        )
        assert similarity >= 0.999, (path.name, similarity)
        crop = np.asarray(result["crop"], dtype=np.int16).reshape(224, 224, 3)
        diff = np.abs(crop - python_crop(path).astype(np.int16))
        rows.append((path.name, float(diff.mean()), int(diff.max()), similarity, gap))
    print("\nfile                      mean |Δpixel|  max |Δpixel|  cosine to server  max |Δp|")
    for name, mean, worst, similarity, gap in rows:
        print(f"{name:<25} {mean:>13.3f} {worst:>13d} {similarity:>17.6f} {gap:>9.1e}")
    assert len(rows) == len(FILES) - len(BROWSER_UNSUPPORTED)
    # Lossless, opaque, 8-bit files decode identically in both: the preprocessing is bit for bit Python's.
    exact = {"small_rgb.png", "gray_l.png", "bitmap.bmp"}
    assert all(worst == 0 for name, _, worst, _, _ in rows if name in exact), rows

    (card,) = wrong_key["cards"]
    assert "the x-api-key header is missing or is not a key of this API" in card["text"]
    assert wrong_key["demo"]["results"][0]["httpStatus"] == 403


def test_on_a_phone_the_page_fits_shows_progress_the_top_3_first_and_says_what_is_not_an_image(
    stack: LocalStack, tmp_path: Path
) -> None:
    """What a new user met: no progress while an image was embedded, every class listed in class order
    under "see the top 3", "8.8 %" beside "0.0876", a text file named .jpg called an undecodable JPEG, the
    API field wider than a 390 px screen, and a favicon answered 403."""
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is a text file, not a JPEG\n")
    (phone,) = drive(
        [
            {
                "name": "phone",
                "url": f"{stack.api.url}/#key=e2e-key",
                "files": [str(FIXTURES / "landscape_rgb.jpg"), str(fake), str(FIXTURES / "photo.webp")],
                "viewport": {"width": 390, "height": 844},
            }
        ],
        tmp_path,
    )
    assert not phone["overflowX"]  # nothing wider than the screen
    assert phone["failed"] == []  # no favicon 403, no other failed request
    assert phone["progress"] == "3 of 3 done"
    cards = {c["file"]: c for c in phone["cards"]}
    results = {r["name"]: r for r in phone["demo"]["results"]}
    for name in ("landscape_rgb.jpg", "photo.webp"):
        card, result = cards[name], results[name]["result"]
        # Each image said what was happening, in order, and the line is gone once the result is shown.
        assert results[name]["steps"] == ["embedding in the page…", "scoring through the API…"]
        assert card["working"] is None
        ranked = sorted(result["classes"], key=lambda c: -result["probabilities"][c])
        assert [label for label, _ in card["shown"]] == ranked[:3]
        assert [label for label, _ in card["folded"]] == ranked[3:] and card["foldedOpen"] is False
        # One number format on the card: the headline's percentage is the top bar's.
        top_label, top_value = card["shown"][0]
        assert card["headline"] == f"{top_label} — {top_value}" and top_value.endswith(" %")
        assert all(value.endswith(" %") for _, value in card["shown"] + card["folded"])
    text = results["notes.jpg"]
    assert text["status"] == "error" and text["errorKind"] == "UnsupportedImageError"
    assert (
        "notes.jpg is not an image: its bytes are not JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC"
        in text["error"]
    )
    assert "only its name says .jpg" in text["error"] and "cannot decode" not in text["error"]


def test_a_page_on_another_origin_works_where_cors_allows_it(
    stack: LocalStack, page_origin: int, tmp_path: Path
) -> None:
    allowed = LocalApi({}, [], api_key=None, port=page_origin, static=web_mounts(stack.model_dir)).start()
    other = LocalApi({}, [], api_key=None, port=free_port(), static=web_mounts(stack.model_dir)).start()
    try:
        api = f"{stack.api.url}/api"
        runs = drive(
            [
                {
                    "name": "allowed",
                    "url": f"{allowed.url}/?api={api}#key=e2e-key",
                    "files": [str(FIXTURES / "photo.webp")],
                },
                {
                    "name": "refused",
                    "url": f"{other.url}/?api={api}#key=e2e-key",
                    "files": [str(FIXTURES / "photo.webp")],
                },
                {
                    "name": "declined",
                    "url": f"{other.url}/?api={api}",
                    "files": [str(FIXTURES / "photo.webp")],
                    "dialog": "dismiss",
                },
            ],
            tmp_path,
        )
    finally:
        allowed.stop()
        other.stop()
    ok, refused, declined = runs
    assert ok["demo"]["results"][0]["status"] == "classified", ok["demo"]["results"][0].get("error")
    origin = stack.api.url
    assert ok["dialogs"] and origin in ok["dialogs"][0]  # another origin: asked before use
    assert "cannot be reached (network, or an origin it does not allow)" in refused["cards"][0]["text"]
    # Declined: the page keeps to its own origin's API, and nothing went to the other one.
    assert declined["demo"]["refusedApi"] == origin
    assert declined["demo"]["results"][0]["status"] == "error"
    assert origin not in declined["cards"][0]["text"]


def test_the_browser_benchmark_measures_the_tiny_model() -> None:
    from bench.bench_browser import measure, render

    row = measure(TINY_MODEL_DIR / "int8", passes=1)
    assert row["model_bytes"] == (TINY_MODEL_DIR / "int8" / "model.onnx").stat().st_size
    assert (
        0 < row["ready_ms"] <= row["first_embedding_ms"]
        and row["embed_ms"] > 0
        and row["native_embed_ms"] > 0
    )
    assert "| tiny |" in render([row])

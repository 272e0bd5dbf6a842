"""A bounded mutation fuzz of the decode path: whatever bytes arrive, the preprocessor returns pixels or
raises one of the image errors that become a ``failed`` item — never anything else (issue 9, item 4)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from clip_classifier.exceptions import CorruptImageError, ImageError
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.manifest import load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from tests.corpus.images import progressive_scans, tiled_tiff
from tests.helpers import mutate

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
#: Small fixtures of every container the decoder accepts (the large ones only slow the fuzz down).
SEEDS = [
    "small_rgb.png",
    "landscape_rgb.jpg",
    "animated.gif",
    "photo.webp",
    "bitmap.bmp",
    "scan.tiff",
    "iphone.heic",
    "palette_transparent.png",
    "exif_rotate_6.jpg",
]
#: Layouts no fixture has, generated: a progressive JPEG (scan counting) and a tiled TIFF (layout checks).
GENERATED = {
    "progressive.jpg": lambda: progressive_scans(20, size=64),
    "tiled.tiff": tiled_tiff,
}
MUTANTS_PER_SEED = 40


def seed_bytes(name: str) -> bytes:
    return GENERATED[name]() if name in GENERATED else (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    transform = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").transform
    return Preprocessor(transform, ImageLimits(max_bytes=5_000_000, max_pixels=4_000_000))


@pytest.mark.parametrize("seed_name", [*SEEDS, *GENERATED])
def test_mutants_decode_or_fail_cleanly(preprocessor: Preprocessor, seed_name: str) -> None:
    original = seed_bytes(seed_name)
    rng = random.Random(f"fuzz-{seed_name}")
    outcomes = {"decoded": 0, "failed": 0}
    for _ in range(MUTANTS_PER_SEED):
        data = mutate(original, rng)
        try:
            pixels = preprocessor(data).pixels
        except ImageError:
            outcomes["failed"] += 1
            continue
        assert np.isfinite(pixels).all()
        outcomes["decoded"] += 1
    assert sum(outcomes.values()) == MUTANTS_PER_SEED
    assert outcomes["failed"] > 0  # the mutations reach the error paths


def test_an_unexpected_plugin_exception_is_a_corrupt_image(
    preprocessor: Preprocessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder raising outside Pillow's usual errors (the HEIF/AVIF plugins raise RuntimeError)."""

    def broken_load(self: Image.Image) -> None:
        raise RuntimeError("plugin exploded")

    monkeypatch.setattr(Image.Image, "load", broken_load)
    with pytest.raises(CorruptImageError, match="decoder failed: RuntimeError: plugin exploded"):
        preprocessor((FIXTURES / "small_rgb.png").read_bytes())

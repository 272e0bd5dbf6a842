"""Decoding and transforms against Hugging Face's CLIPImageProcessor (PIL backend), and every limit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clip_classifier.exceptions import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    ImageTooManyPixelsError,
    UnsupportedImageError,
)
from clip_classifier.image.preprocess import (
    ImageLimits,
    Preprocessor,
    center_crop,
    open_image,
    resize_size,
    to_rgb,
)
from clip_classifier.model.manifest import load_manifest
from clip_local.paths import REPO_ROOT, TINY_MODEL_DIR
from tests.corpus.images import png_bomb

try:
    from transformers import CLIPImageProcessorPil as HFProcessor
except ImportError:  # transformers 4.x: the default CLIPImageProcessor is the PIL one
    from transformers import CLIPImageProcessor as HFProcessor

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "images"
ALL = sorted(p.name for p in FIXTURES.iterdir())
TRANSFORM = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").transform
PARITY = 1e-6  # max abs difference allowed against the Hugging Face processor


@pytest.fixture(scope="module")
def hf() -> HFProcessor:
    return HFProcessor(
        size={"shortest_edge": TRANSFORM.shortest_edge},
        crop_size={"height": TRANSFORM.crop_height, "width": TRANSFORM.crop_width},
        image_mean=list(TRANSFORM.image_mean),
        image_std=list(TRANSFORM.image_std),
        rescale_factor=TRANSFORM.rescale_factor,
    )


def data(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_fixture_set_covers_the_formats_and_modes() -> None:
    formats, modes = set(), set()
    for name in ALL:
        with Image.open(FIXTURES / name) as img:
            formats.add(img.format)
            modes.add(img.mode)
    assert formats >= {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"}
    assert modes >= {"RGB", "RGBA", "LA", "P", "L", "CMYK", "I;16"}


@pytest.mark.parametrize("name", ALL)
def test_exact_path_equals_the_hugging_face_processor(hf: HFProcessor, name: str) -> None:
    ours = Preprocessor(TRANSFORM, mode="exact")(data(name)).pixels
    reference = hf(images=to_rgb(open_image(data(name), ImageLimits())), return_tensors="np")["pixel_values"]
    assert ours.shape == (1, 3, TRANSFORM.crop_height, TRANSFORM.crop_width)
    assert ours.dtype == np.float32
    assert np.abs(ours - reference).max() <= PARITY


@pytest.mark.parametrize(
    "name", [n for n in ALL if n not in ("exif_rotate_6.jpg", "gray16.png", "iphone.heic")]
)
def test_the_processor_fed_the_raw_file_agrees_too(hf: HFProcessor, name: str) -> None:
    """Including HF's own mode conversion (RGBA/LA/P transparency on white, CMYK, L, first GIF frame)."""
    with Image.open(FIXTURES / name) as raw:
        reference = hf(images=raw, return_tensors="np")["pixel_values"]
    assert np.abs(Preprocessor(TRANSFORM, mode="exact")(data(name)).pixels - reference).max() <= PARITY


def test_exif_orientation_is_applied() -> None:
    stored = open_image(data("exif_rotate_6.jpg"), ImageLimits())
    assert stored.size == (400, 300)
    assert to_rgb(stored).size == (300, 400)


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    rgb = np.asarray(to_rgb(open_image(data("gray16.png"), ImageLimits())))
    assert 40 < rgb.mean() < 215  # Pillow's own convert("RGB") would give ~255 everywhere
    assert (rgb[..., 0] == rgb[..., 1]).all()


def test_transparency_is_composited_on_white() -> None:
    rgb = np.asarray(to_rgb(open_image(data("transparent_rgba.png"), ImageLimits())))
    assert (rgb[0, 0] == 255).all()  # outside the opaque ellipse
    assert not (rgb[100, 100] == 255).all()


def test_animated_gif_uses_the_first_frame() -> None:
    with Image.open(FIXTURES / "animated.gif") as gif:
        first = np.asarray(gif.convert("RGB"))
    assert (np.asarray(to_rgb(open_image(data("animated.gif"), ImageLimits()))) == first).all()


def test_resize_size_truncates_like_hugging_face() -> None:
    assert resize_size(640, 427, 224) == (335, 224)
    assert resize_size(240, 900, 224) == (224, 840)
    assert resize_size(100, 100, 224) == (224, 224)


def test_center_crop_pads_small_images_centred() -> None:
    arr = np.full((2, 4, 3), 7, dtype=np.uint8)
    out = center_crop(arr, 4, 4)
    assert out.shape == (4, 4, 3)
    assert (out[1:3] == 7).all() and (out[0] == 0).all() and (out[3] == 0).all()


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        (b"", EmptyImageError, "empty"),
        (b"hello, I am text pretending to be a JPEG", UnsupportedImageError, "not a supported image"),
        (b"%PDF-1.7\n1 0 obj\n", UnsupportedImageError, "not a supported image"),
        (png_bomb(50_000, 50_000), ImageTooManyPixelsError, "2500000000 pixels"),
        (png_bomb(7000, 6000), ImageTooManyPixelsError, "the limit is 40000000"),
    ],
)
def test_bad_payloads_get_specific_errors(payload: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Preprocessor(TRANSFORM)(payload)


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(ImageTooLargeError, match="image is 2001 bytes; the limit is 2000"):
        Preprocessor(TRANSFORM, ImageLimits(max_bytes=2000))(b"\xff" * 2001)


@pytest.mark.parametrize("name", ["landscape_rgb.jpg", "transparent_rgba.png"])
def test_truncated_files_are_corrupt(name: str) -> None:
    raw = data(name)
    with pytest.raises(CorruptImageError):
        Preprocessor(TRANSFORM)(raw[: len(raw) // 2])


def test_unsupported_format_is_refused() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PPM")
    with pytest.raises(UnsupportedImageError, match="PPM is not supported"):
        Preprocessor(TRANSFORM)(buf.getvalue())


def test_auto_mode_takes_the_fast_path_only_for_large_jpegs() -> None:
    pre = Preprocessor(TRANSFORM)
    assert pre(data("large_rgb.jpg")).path == "fast"
    assert pre(data("landscape_rgb.jpg")).path == "exact"  # 427 px short side: DCT scaling cannot halve it
    assert pre(data("transparent_rgba.png")).path == "exact"


def test_fast_path_stays_close_to_exact_in_pixel_space() -> None:
    exact = Preprocessor(TRANSFORM, mode="exact")(data("large_rgb.jpg")).pixels
    fast = Preprocessor(TRANSFORM, mode="fast")(data("large_rgb.jpg")).pixels
    a, b = exact.ravel(), fast.ravel()
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) >= 0.999


def test_fixture_generator_still_produces_the_committed_set(tmp_path: Path) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, str(FIXTURES.parent / "make_images.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = {p.name for p in tmp_path.iterdir()}
    assert generated - {"iphone.heic"} <= set(ALL)
    for name in generated:
        with Image.open(tmp_path / name) as new, Image.open(FIXTURES / name) as committed:
            assert (new.format, new.mode, new.size) == (committed.format, committed.mode, committed.size)


def test_oversized_png_metadata_is_named_for_what_it_is() -> None:
    """Pillow's guard says "text" for both; the message says whether the file's ICC profile or its text is
    over the limit, so a person knows what to strip."""
    from clip_classifier.exceptions import UnsupportedImageError
    from clip_classifier.image.limits import ImageLimits
    from clip_classifier.image.preprocess import open_image
    from tests.corpus.images import png_big_icc, png_big_text

    for payload, named in ((png_big_icc, "ICC colour profile"), (png_big_text, "text metadata")):
        with pytest.raises(UnsupportedImageError, match=f"the PNG's {named} is over the 1 MB safety limit"):
            open_image(payload(), ImageLimits())

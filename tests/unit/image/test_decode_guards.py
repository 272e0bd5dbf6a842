"""Structural bounds and the decode budget (clip_classifier.image.decode_guards) on real, generated files."""

from __future__ import annotations

import io
import time

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from clip_classifier.exceptions import (
    CorruptImageError,
    ImageTooComplexError,
    ImageTooManyPixelsError,
    InvocationTimeoutError,
    UnsupportedImageError,
)
from clip_classifier.image.decode_guards import MAX_JPEG_SCANS, DecodeBudget, count_sos_markers
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.preprocess import Preprocessor
from clip_classifier.model.manifest import load_manifest
from clip_local.paths import TINY_MODEL_DIR
from tests.corpus.images import (
    cmyk_alpha_tiff,
    jpeg_segments,
    progressive_scans,
    tiff_file,
    tiff_giant_tile,
    tiff_many_strips,
    tiled_tiff,
)

TRANSFORM = load_manifest(TINY_MODEL_DIR / "int8" / "manifest.json").transform


def preprocess(data: bytes, **limits: int) -> tuple[int, int]:
    out = Preprocessor(TRANSFORM, ImageLimits(**limits))(data)
    return out.width, out.height


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 4096])
def test_sos_markers_are_counted_across_block_boundaries(chunk: int) -> None:
    data = progressive_scans(37, size=64)
    fp = io.BytesIO(data)
    fp.seek(5)
    assert count_sos_markers(fp, chunk=chunk) == 37 == data.count(b"\xff\xda")
    assert fp.tell() == 5  # the decoder's position is left where it was


def test_the_scan_limit_is_exact() -> None:
    assert preprocess(progressive_scans(MAX_JPEG_SCANS, size=64)) == (64, 64)
    with pytest.raises(ImageTooComplexError, match=f"{MAX_JPEG_SCANS + 1} scans"):
        preprocess(progressive_scans(MAX_JPEG_SCANS + 1, size=64))


def test_a_baseline_jpeg_is_not_read_ahead() -> None:
    # Only progressive files are counted (a baseline JPEG streams): the segments show which is which.
    baseline = io.BytesIO()
    Image.new("RGB", (32, 32)).save(baseline, "JPEG")
    markers = [marker for marker, _ in jpeg_segments(baseline.getvalue())]
    assert markers.count(0xDA) == 1 and 0xC0 in markers and 0xC2 not in markers


def test_tiles_may_overhang_a_small_image_but_not_dwarf_it() -> None:
    assert preprocess(tiled_tiff()) == (100, 80)
    with pytest.raises(CorruptImageError, match="16384x16384 tiles for a 16x16 image"):
        preprocess(tiff_giant_tile())


def test_more_strips_than_rows_is_refused_before_decoding() -> None:
    with pytest.raises(CorruptImageError, match="100000 strips where its size needs 16"):
        preprocess(tiff_many_strips())
    # The same file with the strips it needs decodes.
    assert preprocess(tiff_many_strips(16)) == (16, 16)


def test_a_valid_but_undecodable_layout_is_unsupported_with_the_plugins_reason() -> None:
    with pytest.raises(UnsupportedImageError, match="unknown pixel mode"):
        preprocess(cmyk_alpha_tiff())


def test_a_damaged_tiff_is_corrupt_with_the_plugins_reason() -> None:
    broken = bytearray(tiled_tiff())
    broken[4:8] = (10**9).to_bytes(4, "little")  # the first IFD's offset points past the end
    with pytest.raises(CorruptImageError, match="starts like TIFF but"):
        preprocess(bytes(broken))


def test_layout_writer_is_read_back_by_pillow() -> None:
    # The hand-written TIFFs are only meaningful if the writer is right: a plain striped RGB file
    # it writes must decode to exactly its pixels.
    pixels = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(10, 12, 3)
    data = tiff_file((12, 10), data=[pixels.tobytes()], layout={278: 10}, compression=1)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_the_cpu_budget_stops_a_decode_as_too_complex() -> None:
    data = progressive_scans(MAX_JPEG_SCANS, size=1024)
    pre = Preprocessor(TRANSFORM)
    with pytest.raises(ImageTooComplexError, match="more than 1e-09 s of CPU"):
        pre(data, DecodeBudget(1e-9))
    assert pre(data, DecodeBudget(60)).width == 1024


def test_the_invocation_deadline_is_transient_not_the_images_fault() -> None:
    with pytest.raises(InvocationTimeoutError) as info:
        Preprocessor(TRANSFORM)(tiled_tiff(), DecodeBudget(60, wall_deadline=time.monotonic() - 1))
    assert info.value.transient


def two_image_heif(primary: int) -> bytes:
    """A HEIF with a red 64×48 image 0 and a blue 80×60 image 1; ``primary`` names the primary one."""
    container = pillow_heif.from_pillow(Image.new("RGB", (64, 48), (255, 0, 0)))
    container.add_from_pillow(Image.new("RGB", (80, 60), (0, 0, 255)))
    out = io.BytesIO()
    container.save(out, format="HEIF", primary_index=primary, quality=90)
    return out.getvalue()


@pytest.mark.parametrize(("primary", "size", "channel"), [(0, (64, 48), 0), (1, (80, 60), 2)])
def test_heif_decodes_and_checks_the_primary_image(primary: int, size: tuple[int, int], channel: int) -> None:
    out = Preprocessor(TRANSFORM)(two_image_heif(primary))
    assert (out.format, (out.width, out.height)) == ("HEIF", size)
    # The normalised tensor's strongest channel is the primary image's colour (red or blue).
    assert int(np.argmax(out.pixels[0].mean(axis=(1, 2)))) == channel
    # The pixel limit applies to the primary image, whichever index it has.
    with pytest.raises(ImageTooManyPixelsError, match=f"{size[0]}x{size[1]}"):
        Preprocessor(TRANSFORM, ImageLimits(max_pixels=size[0] * size[1] - 1))(two_image_heif(primary))

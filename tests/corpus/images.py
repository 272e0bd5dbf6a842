"""The bad-input image corpus: every case is generated here (deterministic) or is a committed fixture made
by tests/fixtures/make_images.py, and states its expected outcome: ``classified`` or a failure code.

Run ``python -m tests.corpus.images`` to list the cases.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
#: The corpus runs with this MAX_IMAGE_BYTES so the over-size case stays small.
MAX_BYTES = 3_000_000


@dataclass(frozen=True)
class ImageCase:
    case: str
    name: str  # key under the upload prefix
    payload: Callable[[], bytes]
    expected: str  # "classified" or the error code of the failed item


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    arr = np.stack(
        [128 + 90 * np.sin(x / 17), 128 + 90 * np.cos(y / 23), 128 + 60 * np.sin((x + y) / 31)], -1
    )
    arr += rng.normal(0, 6, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _fixture(name: str) -> Callable[[], bytes]:
    return lambda: (FIXTURES / name).read_bytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """IHDR claims width × height; the body is 64 bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def gif_bomb() -> bytes:
    raw = bytearray(_encode(Image.new("P", (1, 1)), "GIF"))
    raw[6:10] = (65535).to_bytes(2, "little") * 2
    descriptor = raw.index(b",")
    raw[descriptor + 5 : descriptor + 9] = (65535).to_bytes(2, "little") * 2
    return bytes(raw)


def with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(160, 120, orientation), "JPEG", quality=90, exif=exif.tobytes())


def bit_flipped_jpeg() -> bytes:
    raw = bytearray(_encode(_photo(160, 120), "JPEG", quality=90))
    for i in range(len(raw) // 2, len(raw) // 2 + 40, 4):
        raw[i] ^= 0x55  # damage inside the entropy-coded data: libjpeg decodes with artefacts
    return bytes(raw)


def png_bad_header_crc() -> bytes:
    raw = bytearray(_encode(_photo(64, 48), "PNG"))
    raw[29] ^= 0xFF  # IHDR's CRC
    return bytes(raw)


def animated(fmt: str) -> bytes:
    frames = [_photo(80, 60, 1), _photo(80, 60, 2)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette(transparent: bool) -> bytes:
    image = _photo(90, 60).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return _encode(image, "PNG", **({"transparency": 0} if transparent else {}))


def image_cases() -> list[ImageCase]:
    def jpeg() -> bytes:
        return _encode(_photo(200, 150), "JPEG", quality=90)

    cases = [
        ImageCase("zero bytes", "zero.jpg", lambda: b"", "image_empty"),
        ImageCase(
            "text named .jpg",
            "notes.jpg",
            lambda: b"Dear diary, today I uploaded a text file.\n" * 20,
            "image_unsupported",
        ),
        ImageCase(
            "HTML named .png",
            "page.png",
            lambda: b"<!doctype html><html><body>hi</body></html>",
            "image_unsupported",
        ),
        ImageCase(
            "PDF named .jpg",
            "doc.jpg",
            lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            "image_unsupported",
        ),
        ImageCase(
            "SVG named .png",
            "vector.png",
            lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
            "image_unsupported",
        ),
        ImageCase(
            "PPM (not a supported format)",
            "raw.jpg",
            lambda: _encode(_photo(20, 20), "PPM"),
            "image_unsupported",
        ),
        ImageCase(
            "ICO (not a supported format)",
            "favicon.png",
            lambda: _encode(_photo(32, 32), "ICO"),
            "image_unsupported",
        ),
        ImageCase("truncated JPEG (half)", "half.jpg", lambda: jpeg()[: len(jpeg()) // 2], "image_corrupt"),
        ImageCase("truncated JPEG (header only)", "head.jpg", lambda: jpeg()[:20], "image_corrupt"),
        ImageCase(
            "truncated PNG", "half.png", lambda: _encode(_photo(200, 150), "PNG")[:3000], "image_corrupt"
        ),
        ImageCase(
            "PNG signature only", "sig.png", lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 30, "image_corrupt"
        ),
        ImageCase("PNG with a broken header CRC", "crc.png", png_bad_header_crc, "image_corrupt"),
        ImageCase("JPEG with damaged scan data", "flipped.jpg", bit_flipped_jpeg, "classified"),
        ImageCase(
            "JPEG with garbage after EOI", "trailing.jpg", lambda: jpeg() + b"GARBAGE" * 100, "classified"
        ),
        ImageCase(
            "JPEG with a corrupt ICC profile",
            "icc.jpg",
            lambda: _encode(_photo(120, 90), "JPEG", icc_profile=b"not an ICC profile" * 8),
            "classified",
        ),
        ImageCase("PNG named .jpg", "misnamed.jpg", _fixture("small_rgb.png"), "classified"),
        ImageCase("JPEG named .png", "misnamed.png", _fixture("landscape_rgb.jpg"), "classified"),
        ImageCase("WebP named .gif", "misnamed.gif", _fixture("photo.webp"), "classified"),
        ImageCase("CMYK JPEG", "cmyk.jpg", _fixture("cmyk.jpg"), "classified"),
        ImageCase("16-bit greyscale PNG", "gray16.png", _fixture("gray16.png"), "classified"),
        ImageCase("palette PNG", "palette.png", lambda: palette(False), "classified"),
        ImageCase("palette PNG with transparency", "palette_t.png", lambda: palette(True), "classified"),
        ImageCase("transparent RGBA PNG", "rgba.png", _fixture("transparent_rgba.png"), "classified"),
        ImageCase("greyscale + alpha PNG", "la.png", _fixture("gray_alpha_la.png"), "classified"),
        ImageCase("animated GIF", "anim.gif", lambda: animated("GIF"), "classified"),
        ImageCase("animated WebP", "anim.webp", lambda: animated("WEBP"), "classified"),
        ImageCase("HEIC (iPhone)", "iphone.heic", _fixture("iphone.heic"), "classified"),
        ImageCase("BMP", "bitmap.bmp", _fixture("bitmap.bmp"), "classified"),
        ImageCase("TIFF", "scan.tiff", _fixture("scan.tiff"), "classified"),
        ImageCase(
            "decompression bomb PNG (30000×30000 header, 64-byte body)",
            "bomb.png",
            lambda: png_bomb(30_000, 30_000),
            "image_too_many_pixels",
        ),
        ImageCase(
            "PNG just over the pixel limit (7000×6000)",
            "big_header.png",
            lambda: png_bomb(7000, 6000),
            "image_too_many_pixels",
        ),
        ImageCase("GIF bomb (65535×65535 screen)", "bomb.gif", gif_bomb, "image_too_many_pixels"),
        ImageCase("1×1 PNG", "one.png", lambda: _encode(_photo(1, 1), "PNG"), "classified"),
        ImageCase("1×10000 PNG", "strip_tall.png", lambda: _encode(_photo(1, 10000), "PNG"), "classified"),
        ImageCase("10000×1 JPEG", "strip_wide.jpg", lambda: _encode(_photo(10000, 1), "JPEG"), "classified"),
        ImageCase(
            "over-size object",
            "huge.jpg",
            lambda: b"\xff\xd8\xff\xe0" + b"\0" * (MAX_BYTES + 1),
            "image_too_large",
        ),
        ImageCase("unicode key", "été 東京.jpg", jpeg, "classified"),
        ImageCase("'+' in key", "a+b.jpg", jpeg, "classified"),
        ImageCase("spaces in key", "with  two spaces.jpg", jpeg, "classified"),
        ImageCase("nested key", "user/42/album/x.jpg", jpeg, "classified"),
        ImageCase("upper-case suffix", "SHOUT.JPG", jpeg, "classified"),
    ]
    cases += [
        ImageCase(f"EXIF orientation {o}", f"exif_{o}.jpg", (lambda o=o: with_orientation(o)), "classified")  # type: ignore[misc]
        for o in range(1, 9)
    ]
    return cases


# --- round 2: cases an outside review found (generated, small) -------------------------------------


def gif_many_frames(frames: int = 100_000) -> bytes:
    """A 1×1 GIF with ``frames`` frames of 23 bytes each: counting them walks every one."""
    header = b"GIF89a" + (1).to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    frame = (
        b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control: delay 10 ms
        + b"\x2c" + b"\x00\x00" * 2 + b"\x01\x00" * 2 + b"\x00"  # 1×1 at (0, 0), no local palette
        + b"\x02\x02\x44\x01\x00"  # LZW: one pixel of colour 0
    )  # fmt: skip
    return header + frame * frames + b"\x3b"


def tiff_many_ifds(ifds: int = 24_000) -> bytes:
    """A valid 32×24 TIFF whose first IFD links to a chain of ``ifds`` more (each a one-pixel page)."""
    base = bytearray(_encode(_photo(32, 24), "TIFF"))
    assert base[:4] == b"II*\x00"
    first = int.from_bytes(base[4:8], "little")
    count = int.from_bytes(base[first : first + 2], "little")
    next_pointer = first + 2 + 12 * count
    page = bytearray(_encode(Image.new("L", (1, 1)), "TIFF"))
    page_ifd = int.from_bytes(page[4:8], "little")
    page_count = int.from_bytes(page[page_ifd : page_ifd + 2], "little")
    entries = bytes(page[page_ifd + 2 : page_ifd + 2 + 12 * page_count])
    pixel = len(base)  # one L pixel, shared by every page: strip offset and byte count patched below
    base += b"\x00\x00"
    chain_start = len(base)
    size = 2 + 12 * page_count + 4
    out = bytearray()
    for i in range(ifds):
        ifd = bytearray(page_count.to_bytes(2, "little") + entries)
        for e in range(page_count):
            at = 2 + 12 * e
            if int.from_bytes(ifd[at : at + 2], "little") == 273:  # StripOffsets
                ifd[at + 8 : at + 12] = pixel.to_bytes(4, "little")
        nxt = chain_start + (i + 1) * size if i + 1 < ifds else 0
        out += ifd + nxt.to_bytes(4, "little")
    base[next_pointer : next_pointer + 4] = chain_start.to_bytes(4, "little")
    return bytes(base + out)


def float_tiff() -> bytes:
    values = np.linspace(0.0, 1.0, 48 * 32, dtype=np.float32).reshape(32, 48)
    return _encode(Image.fromarray(values, "F"), "TIFF")


def png_big_text() -> bytes:
    """A valid PNG with a zTXt chunk that inflates to 2 MB (Pillow's guard is 1 MB a chunk)."""
    raw = _encode(_photo(64, 48), "PNG")
    ztxt = b"Comment\x00\x00" + zlib.compress(b"A" * 2_000_000, 9)
    at = raw.index(b"IDAT") - 4
    return raw[:at] + _png_chunk(b"zTXt", ztxt) + raw[at:]


def round_two_cases() -> list[ImageCase]:
    return [
        ImageCase("GIF with 100,000 frames (2.3 MB)", "frames.gif", gif_many_frames, "classified"),
        ImageCase("TIFF with 24,001 chained IFDs (2.9 MB)", "ifds.tiff", tiff_many_ifds, "classified"),
        ImageCase("float32 (mode F) TIFF", "float.tiff", float_tiff, "image_unsupported"),
        ImageCase("PNG with a 2 MB (inflated) zTXt chunk", "bigtext.png", png_big_text, "image_unsupported"),
    ]


if __name__ == "__main__":
    for c in [*image_cases(), *round_two_cases()]:
        print(f"{c.case:<62} {c.name:<24} {c.expected}")

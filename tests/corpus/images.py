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


def png_big_icc() -> bytes:
    """A valid PNG whose iCCP chunk (its ICC profile) inflates to 2 MB: the same Pillow guard as text."""
    raw = _encode(_photo(64, 48), "PNG")
    iccp = b"profile\x00\x00" + zlib.compress(b"\x00" * 2_000_000, 9)
    at = raw.index(b"IDAT") - 4
    return raw[:at] + _png_chunk(b"iCCP", iccp) + raw[at:]


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG split into (marker, bytes), each SOS segment with the entropy-coded data that follows it."""
    out, pos = [(0xD8, data[:2])], 2
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, data[pos : pos + 2]))
            break
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:
            # Entropy-coded data runs to the next marker that is neither a stuffed 0xFF00 nor RSTn.
            while data[(end := data.index(b"\xff", end)) + 1] in range(0xD0, 0xD8) or data[end + 1] == 0:
                end += 2
        out.append((marker, data[pos:end]))
        pos = end
    return out


def progressive_scans(scans: int, size: int = 2000) -> bytes:
    """A valid progressive JPEG (libjpeg's 10-scan script) whose last, 14-byte refinement scan is repeated
    until the file has ``scans`` scans: every scan walks the whole coefficient buffer."""
    flat = Image.new("RGB", (size, size), (120, 130, 140))  # flat: each refinement scan is 14 bytes
    segments = jpeg_segments(_encode(flat, "JPEG", progressive=True, quality=75))
    own = [body for marker, body in segments if marker == 0xDA]
    head = b"".join(body for marker, body in segments if marker != 0xD9)
    return head + own[-1] * (scans - len(own)) + b"\xff\xd9"


def tiff_file(
    size: tuple[int, int],
    *,
    data: list[bytes],
    layout: dict[int, int],
    samples: int = 3,
    photometric: int = 2,
    extra_samples: tuple[int, ...] = (),
    compression: int = 8,
    shared: bool = False,
) -> bytes:
    """A little-endian one-page TIFF written tag by tag (Pillow cannot write tiles or lie about them).

    ``data`` holds the strips or tiles as stored; ``layout`` is {RowsPerStrip: n} or {TileWidth: w,
    TileLength: h}; offsets and byte counts are filled in, one per entry of ``data``. ``shared``: the
    entries are equal, stored once, and every offset points at that one copy.
    """
    tiled = 322 in layout
    offsets_tag, counts_tag = (324, 325) if tiled else (273, 279)
    tags: dict[int, tuple[int, list[int]]] = {
        256: (4, [size[0]]),
        257: (4, [size[1]]),
        258: (3, [8] * samples),
        259: (3, [compression]),
        262: (3, [photometric]),
        277: (3, [samples]),
        284: (3, [1]),
        **{tag: (4, [value]) for tag, value in layout.items()},
        offsets_tag: (4, [0] * len(data)),
        counts_tag: (4, [len(chunk) for chunk in data]),
    }
    if extra_samples:
        tags[338] = (3, list(extra_samples))
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    outside = {tag: 2 * len(v) if t == 3 else 4 * len(v) for tag, (t, v) in tags.items()}
    data_start = ifd_end + sum(n for n in outside.values() if n > 4)
    if shared:
        positions = [data_start] * len(data)
    else:
        positions = [int(p) for p in np.cumsum([data_start] + [len(chunk) for chunk in data])[:-1]]
    tags[offsets_tag] = (4, positions)
    entries, blobs = b"", b""
    for tag in sorted(tags):
        kind, values = tags[tag]
        packed = b"".join(struct.pack("<H" if kind == 3 else "<I", v) for v in values)
        if len(packed) <= 4:
            entries += struct.pack("<HHI", tag, kind, len(values)) + packed.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, kind, len(values), ifd_end + len(blobs))
            blobs += packed
    header = b"II*\x00" + struct.pack("<IH", 8, len(tags))
    return header + entries + b"\0\0\0\0" + blobs + (data[0] if shared else b"".join(data))


def tiled_tiff(width: int = 100, height: int = 80, tile: int = 256) -> bytes:
    """A valid tiled TIFF whose one 256×256 tile overhangs a 100×80 image (as the format allows)."""
    padded = np.zeros((tile, tile, 3), dtype=np.uint8)
    padded[:height, :width] = np.asarray(_photo(width, height))
    return tiff_file(
        (width, height),
        data=[zlib.compress(padded.tobytes())],
        layout={322: tile, 323: tile},
    )


def tiff_giant_tile(tile: int = 16384) -> bytes:
    """A 16×16 TIFF declaring one 16384×16384 tile: libtiff would allocate 805 MB for it."""
    return tiff_file((16, 16), data=[zlib.compress(b"\0" * 64)], layout={322: tile, 323: tile})


def tiff_many_strips(strips: int = 100_000) -> bytes:
    """A 16×16 TIFF declaring ``strips`` one-row strips (its 16 rows need 16), all of one stored row."""
    row = b"\x80" * 48
    return tiff_file((16, 16), data=[row] * strips, layout={278: 1}, compression=1, shared=True)


def cmyk_alpha_tiff() -> bytes:
    """A valid 8-bit CMYK TIFF with an unassociated alpha channel (Pillow has no such mode)."""
    pixels = np.full((24, 32, 5), 64, dtype=np.uint8)
    return tiff_file(
        (32, 24),
        data=[pixels.tobytes()],
        layout={278: 24},
        samples=5,
        photometric=5,
        extra_samples=(2,),
        compression=1,
    )


def round_two_cases() -> list[ImageCase]:
    return [
        ImageCase("GIF with 100,000 frames (2.3 MB)", "frames.gif", gif_many_frames, "classified"),
        ImageCase("TIFF with 24,001 chained IFDs (2.9 MB)", "ifds.tiff", tiff_many_ifds, "classified"),
        ImageCase("float32 (mode F) TIFF", "float.tiff", float_tiff, "image_unsupported"),
        ImageCase("PNG with a 2 MB (inflated) zTXt chunk", "bigtext.png", png_big_text, "image_unsupported"),
        ImageCase("PNG with a 2 MB (inflated) ICC profile", "bigicc.png", png_big_icc, "image_unsupported"),
        ImageCase(
            "progressive JPEG with 1,000 scans (38 kB)",
            "scans.jpg",
            lambda: progressive_scans(1000),
            "image_too_complex",
        ),
        ImageCase(
            "progressive JPEG with 100 scans (the limit)",
            "scans100.jpg",
            lambda: progressive_scans(100),
            "classified",
        ),
        ImageCase("tiled TIFF (a 256×256 tile, 100×80 image)", "tiled.tiff", tiled_tiff, "classified"),
        ImageCase("TIFF declaring a 16384×16384 tile (16×16)", "tile.tiff", tiff_giant_tile, "image_corrupt"),
        ImageCase(
            "TIFF with 100,000 strips for 16 rows (0.8 MB)", "strips.tiff", tiff_many_strips, "image_corrupt"
        ),
        ImageCase("CMYK + alpha TIFF", "cmyka.tiff", cmyk_alpha_tiff, "image_unsupported"),
    ]


if __name__ == "__main__":
    for c in [*image_cases(), *round_two_cases()]:
        print(f"{c.case:<62} {c.name:<24} {c.expected}")

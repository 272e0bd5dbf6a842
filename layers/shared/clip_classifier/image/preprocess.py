"""Decode image bytes (or a stream of them still arriving) safely and turn them into the embedder's input tensor.

Decoding: Pillow (plus pi-heif for HEIC/HEIF), the first frame of animations, EXIF orientation applied,
16-bit greyscale scaled to 8 bits, transparency composited onto white and every other mode converted to
RGB (as Hugging Face's ``convert_to_rgb`` does). Limits are checked from the header, before any pixel is
decoded: object size, then width × height (which also stops decompression bombs).

Two transforms, both driven by the model manifest's :class:`ImageTransform`:

* **exact** — equal to Hugging Face ``CLIPImageProcessor``'s PIL backend: bicubic resize of the shorter
  side (longer side truncated as HF does), centre crop, ``x * rescale`` in float64 cast to float32, then
  ``(x - mean) / std`` in float32 (``tests/unit/image/test_preprocess.py`` compares with the real processor).
  Past a 16:1 aspect ratio only the region that survives the crop is resampled, so a 1×10000 strip
  costs kilobytes instead of the ~1.5 GB the full resize would take.
* **fast** — for large JPEGs: the decoder's DCT scaling (``Image.draft``) decodes at 1/2, 1/4 or 1/8 size,
  never below the resize target, and the exact transform runs on that smaller image. Embedding cosine to
  the exact path ≥ 0.999 (tests and ``bench/bench_pipeline.py``).
"""

from __future__ import annotations

import contextlib
import io
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast

import numpy as np
import numpy.typing as npt
from pi_heif import register_heif_opener
from PIL import Image, ImageOps, UnidentifiedImageError

from clip_classifier.arrays import F32
from clip_classifier.exceptions import (
    ClassifierError,
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    ImageTooManyPixelsError,
    UnsupportedImageError,
)
from clip_classifier.image.decode_guards import BudgetedReader, DecodeBudget, check_structure
from clip_classifier.image.limits import ImageLimits
from clip_classifier.image.transform import ImageTransform

# HEIC/HEIF (iPhone photos): a hard dependency of the image runtime, registered once per process.
register_heif_opener()

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF"})
#: Pixel layouts with a faithful conversion to 8-bit RGB (16-bit greyscale is scaled, alpha composited).
SUPPORTED_MODES = frozenset(
    {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
    | {"I", "I;16", "I;16L", "I;16B", "I;16N"}
)
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
# What Pillow raises on damaged data, depending on the codec and where the damage is.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    ZeroDivisionError,
)

Mode = Literal["auto", "exact", "fast"]
#: Beyond this ratio of resized long side to crop, only the part that survives the crop is resampled.
MAX_ASPECT = 16


@dataclass(frozen=True, slots=True)
class Preprocessed:
    pixels: F32  # [1, 3, crop_height, crop_width]
    format: str
    width: int  # as stored, before EXIF rotation
    height: int
    path: Literal["exact", "fast"]


_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The supported format a file's magic bytes claim, if any (to tell corrupt from unsupported)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
        return "HEIF"
    return next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)


#: The whole file, or a seekable binary stream (e.g. an ``ObjectStream`` over a response still arriving).
Source = bytes | BinaryIO | io.RawIOBase


#: PNG chunks whose payload is compressed metadata, and what each holds.
_PNG_METADATA = {b"iCCP": "ICC colour profile", b"zTXt": "text metadata", b"iTXt": "text metadata"}
_PNG_METADATA_LIMIT = 1024 * 1024


def _oversized_png_metadata(fp: BinaryIO) -> str:
    """Which compressed PNG metadata inflates past the limit, read from the chunk headers (bounded: at most
    the limit + 1 byte of each chunk is inflated). ``metadata`` when it cannot tell."""
    try:
        fp.seek(8)
        while True:
            header = fp.read(8)
            if len(header) < 8:
                break
            length, kind = struct.unpack(">I4s", header)
            if kind in _PNG_METADATA and length <= 64 * 1024 * 1024:
                payload = fp.read(length)
                # keyword NUL, then (iTXt) flag + method + language NUL + translated NUL, then the data
                start = payload.find(b"\0") + 1
                if kind == b"iTXt":
                    start += 2
                    start = payload.find(b"\0", payload.find(b"\0", start) + 1) + 1
                else:
                    start += 1
                inflater = zlib.decompressobj()
                if len(inflater.decompress(payload[start:], _PNG_METADATA_LIMIT + 1)) > _PNG_METADATA_LIMIT:
                    return _PNG_METADATA[kind]
                fp.seek(4, io.SEEK_CUR)
            else:
                fp.seek(length + 4, io.SEEK_CUR)
            if kind == b"IDAT":
                break
    except (OSError, ValueError, zlib.error, struct.error):
        pass
    return "metadata"


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def open_image(source: Source, limits: ImageLimits, budget: DecodeBudget | None = None) -> Image.Image:
    """Parse the header only, and enforce every limit before decoding pixels.

    ``source`` is the whole file, or a seekable stream that enforces ``limits.max_bytes`` itself (an
    :class:`~clip_classifier.ingest.object_stream.ObjectStream`); pixels are decoded from it later, as they arrive.
    Every read the decoder makes checks ``budget``.
    """
    if isinstance(source, bytes):
        if len(source) > limits.max_bytes:
            raise ImageTooLargeError(f"image is {len(source)} bytes; the limit is {limits.max_bytes}")
        source = io.BytesIO(source)
    # Pillow closes the file when the image is closed (to_rgb closes it to free its pixels early); the
    # reader does not close the caller's stream. A RawIOBase is a binary file at run time; typeshed's
    # BinaryIO is nominal, hence the cast.
    fp = cast(BinaryIO, BudgetedReader(source, budget))
    prefix = fp.read(16)
    fp.seek(0)
    if not prefix:
        raise EmptyImageError("the object is empty (0 bytes)")
    try:
        image = Image.open(fp)
    except UnidentifiedImageError as exc:
        claimed = sniff_format(prefix)
        if claimed is not None:
            raise _unreadable(fp, claimed) from exc
        raise UnsupportedImageError(
            "not a supported image (JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC/HEIF expected)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooManyPixelsError(f"image declares too many pixels: {exc}") from exc
    except ClassifierError:
        raise  # the stream's own errors (a broken transfer is transient, not a corrupt image)
    except ValueError as exc:
        if "MAX_TEXT" in str(exc) or "text chunks" in str(exc):
            # A valid PNG whose compressed metadata (an ICC profile, or text) is over Pillow's guard
            # (1 MB a chunk): say which, so the message points at what to strip from the file.
            raise UnsupportedImageError(
                f"the PNG's {_oversized_png_metadata(fp)} is over the 1 MB safety limit ({exc})"
            ) from exc
        raise CorruptImageError(f"cannot read the image header: {exc}") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"cannot read the image header: {exc}") from exc
    except Exception as exc:  # decoder plugins raise anything (RuntimeError, MemoryError, ...)
        raise CorruptImageError(
            f"the {sniff_format(prefix) or 'image'} decoder failed: {_brief(exc)}"
        ) from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(f"image format {image.format} is not supported")
    if image.mode not in SUPPORTED_MODES:
        # A valid file in a layout the pipeline cannot turn into a photo faithfully (float or complex
        # samples, exotic band sets): say so, rather than call it corrupt or guess a conversion.
        raise UnsupportedImageError(f"{image.format} images with {image.mode} pixels are not supported")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"image declares an empty size {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageTooManyPixelsError(
            f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}"
        )
    try:
        check_structure(image)
    except ClassifierError:
        raise
    except Exception as exc:  # a malformed tag value met while checking
        raise CorruptImageError(f"cannot read the {image.format} structure: {_brief(exc)}") from exc
    return image


#: What a format plugin says about a valid file in a layout it cannot decode.
_UNSUPPORTED_REASONS = ("unknown pixel mode", "unsupported", "not supported")


def _unreadable(fp: BinaryIO, claimed: str) -> ClassifierError:
    """Why no plugin opened a file that starts like ``claimed``: that format's plugin, run alone, says.

    Pillow's ``open`` tries every plugin and keeps none of their reasons; the claimed format's own reason
    tells a valid layout it does not decode (a CMYK TIFF with alpha: unsupported) from a damaged file.
    """
    factory = Image.OPEN.get(claimed.upper(), (None, None))[0]
    reason = "it cannot be parsed"
    if factory is not None:
        try:
            fp.seek(0)
            factory(fp, "").close()
        except ClassifierError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - only its words are kept, in the error returned
            reason = str(exc)[:200] or type(exc).__name__
    if any(marker in reason.lower() for marker in _UNSUPPORTED_REASONS):
        return UnsupportedImageError(f"this {claimed} layout is not supported ({reason})")
    return CorruptImageError(f"the file starts like {claimed} but {reason}")


def to_rgb(image: Image.Image, budget: DecodeBudget | None = None) -> Image.Image:
    """Decode (first frame), apply EXIF orientation, and convert to 8-bit RGB with alpha on white.

    Consumes ``image``: it is rotated in place and closed once converted, so at the pixel limit (40 MP
    RGBA, 160 MB a copy) no more than two full-size copies are alive at once (``bench/decode_limits.py``).
    ``budget`` is checked between the stages (the reads inside ``load`` check it too).
    """
    check = budget.check if budget is not None else _no_check
    try:
        # The frame decoded is the one open_image checked: frame 0, or the primary image of a HEIF file
        # (which pi-heif selects on open, and which need not be image 0). Never seek, never count frames:
        # n_frames walks every frame of a GIF or every IFD of a TIFF, and a few kilobytes can hold 10^5.
        image.load()
        check()
        # An unreadable EXIF block only loses the orientation hint, not the picture. In place: the
        # default returns a full copy even when there is nothing to rotate.
        with contextlib.suppress(*_DECODE_ERRORS):
            ImageOps.exif_transpose(image, in_place=True)
        check()
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            # 16-bit greyscale: Pillow's own convert("RGB") clips at 255 (nearly all white); scale instead.
            wide = np.asarray(image, dtype=np.uint32)
            image = _replace(image, Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8), "L"))
            del wide
        has_alpha = "A" in image.getbands() or image.info.get("transparency") is not None
        if has_alpha:
            rgba = image if image.mode == "RGBA" else _replace(image, image.convert("RGBA"))
            # Composited onto the white canvas in place (the same operation as Image.alpha_composite).
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            canvas.alpha_composite(rgba)
            rgba.close()
            check()
            return _replace(canvas, canvas.convert("RGB"))
        return image if image.mode == "RGB" else _replace(image, image.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise ImageTooManyPixelsError(f"image expands to too many pixels: {exc}") from exc
    except ClassifierError:
        raise  # the stream's own errors (a broken transfer is transient, not a corrupt image)
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"cannot decode the {image.format} image: {exc}") from exc
    except Exception as exc:  # decoder plugins raise anything (RuntimeError, MemoryError, ...)
        raise CorruptImageError(f"the {image.format} decoder failed: {_brief(exc)}") from exc


def _no_check() -> None:
    return None


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, after releasing ``old``'s pixels (close frees them at once, not at garbage collection)."""
    old.close()
    return new


def resize_size(width: int, height: int, shortest_edge: int) -> tuple[int, int]:
    """(width, height) after resizing the shorter side, truncating the longer one exactly as HF does."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


class Normalizer:
    """Rescale + normalize with the exact float arithmetic of Hugging Face's numpy path."""

    def __init__(self, transform: ImageTransform) -> None:
        self.transform = transform
        mean = np.asarray(transform.image_mean, dtype=np.float32)
        std = np.asarray(transform.image_std, dtype=np.float32)
        # Each output depends only on a pixel's uint8 value and channel, so HF's arithmetic, evaluated once
        # for all 256 values, is a [channel, value] table: bit-identical and ~7× faster than per pixel.
        values = np.arange(256, dtype=np.float64)[:, None]
        table = ((values * transform.rescale_factor).astype(np.float32) - mean) / std
        self._table = np.ascontiguousarray(table.T)

    def __call__(self, rgb: Image.Image) -> F32:
        t = self.transform
        width, height = resize_size(rgb.width, rgb.height, t.shortest_edge)
        if max(width, height) <= MAX_ASPECT * max(t.crop_width, t.crop_height):
            resized = rgb.resize((width, height), resample=_RESAMPLE[t.resample])
        else:
            # Extreme aspect ratio (a 1×10000 strip would resize to 224×2,240,000, ~1.5 GB, in HF too):
            # resample only the source box that maps onto the centre crop. Not HF-identical, but bounded.
            out_w, out_h = min(width, t.crop_width), min(height, t.crop_height)
            left, top = (width - out_w) // 2, (height - out_h) // 2
            sx, sy = rgb.width / width, rgb.height / height
            box = (left * sx, top * sy, (left + out_w) * sx, (top + out_h) * sy)
            resized = rgb.resize((out_w, out_h), resample=_RESAMPLE[t.resample], box=box)
        chw = center_crop(np.asarray(resized), t.crop_height, t.crop_width).transpose(2, 0, 1)
        out = np.empty((1, *chw.shape), dtype=np.float32)
        for channel in range(chw.shape[0]):
            np.take(self._table[channel], chw[channel], out=out[0, channel])
        return out


def center_crop(arr: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Centre crop of an HWC array; zero-padded (centred) where it is smaller, exactly as HF does."""
    h, w = arr.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    if top >= 0 and left >= 0:
        return arr[top : top + height, left : left + width]
    new_h, new_w = max(height, h), max(width, w)
    padded = np.zeros((new_h, new_w, arr.shape[2]), dtype=arr.dtype)
    top_pad, left_pad = -(-(new_h - h) // 2), -(-(new_w - w) // 2)
    padded[top_pad : top_pad + h, left_pad : left_pad + w] = arr
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top) : min(new_h, top + height), max(0, left) : min(new_w, left + width)]


class Preprocessor:
    """Bytes → ``[1, 3, H, W]`` float32, with limits; one instance per container."""

    def __init__(
        self,
        transform: ImageTransform,
        limits: ImageLimits | None = None,
        *,
        mode: Mode = "auto",
        fast_oversample: float = 1.0,
    ) -> None:
        self.transform = transform
        self.limits = limits or ImageLimits()
        self.mode: Mode = mode
        self.fast_oversample = fast_oversample
        self._normalize = Normalizer(transform)

    def wants_fast(self, image: Image.Image) -> bool:
        if self.mode == "exact" or image.format not in ("JPEG", "MPO"):
            return False
        # Only worth it when DCT scaling can at least halve the image without going below the target.
        return (
            self.mode == "fast" or min(image.size) >= 2 * self.transform.shortest_edge * self.fast_oversample
        )

    def __call__(self, source: Source, budget: DecodeBudget | None = None) -> Preprocessed:
        """Decode and transform the whole file's bytes, or a stream still being read (see :func:`open_image`).

        ``budget`` defaults to ``limits.max_decode_seconds`` of CPU, with no wall-clock deadline.
        """
        budget = budget or DecodeBudget(self.limits.max_decode_seconds)
        image = open_image(source, self.limits, budget)
        width, height, fmt = image.width, image.height, str(image.format)
        fast = self.wants_fast(image)
        if fast:
            scale = self.transform.shortest_edge * self.fast_oversample / min(width, height)
            image.draft("RGB", (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))))
        rgb = to_rgb(image, budget)
        budget.check()
        return Preprocessed(self._normalize(rgb), fmt, width, height, "fast" if fast else "exact")

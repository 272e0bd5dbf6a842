"""Bounds on the work and memory a decoder may spend on one image, checked from its structure or while it runs.

The pixel limit (:func:`~.preprocess.open_image`) bounds the decoded image; these bound what a few
kilobytes can still make a decoder do beyond it:

* **progressive JPEG scans** — every scan walks the whole coefficient buffer, so 1,000 scans of 14 bytes
  each cost as much as decoding the image 1,000 times (40 s for 36 MP here). Encoders' default scripts use
  10 (libjpeg) or fewer; more than :data:`MAX_JPEG_SCANS` is refused as ``image_too_complex``.
* **TIFF layouts** — more strip or tile offsets than the image has strips or tiles (each one is a decode
  call: 100,000 for a 16×16 image took 1 s), or tiles larger than the image (libtiff allocates a whole
  tile: a 164-byte file declaring one 32768×32768 tile took 3 GB) are refused as ``image_corrupt``.
* **a CPU budget** — :class:`DecodeBudget` is checked as the decoder reads each block of input and between
  the decode stages: past its CPU seconds the image is ``image_too_complex`` (permanent); past the
  invocation's wall-clock deadline the record is retried (transient: the image may be fine).
"""

from __future__ import annotations

import io
import math
import time
from typing import Any

from PIL import ImageFile

from clip_classifier.exceptions import CorruptImageError, ImageTooComplexError, InvocationTimeoutError

#: At most this many scans (SOS markers) in a progressive JPEG file.
MAX_JPEG_SCANS = 100
#: Tiles may be this large whatever the image size (1024×1024, common in pyramidal TIFFs).
MIN_TILE_PIXELS_ALLOWED = 1024 * 1024
_SOS = b"\xff\xda"
_CHUNK = 1 << 20

# TIFF tags (TIFF 6.0 specification).
_ROWS_PER_STRIP, _STRIP_OFFSETS = 278, 273
_TILE_WIDTH, _TILE_LENGTH, _TILE_OFFSETS = 322, 323, 324
_SAMPLES_PER_PIXEL, _PLANAR_CONFIGURATION = 277, 284


class DecodeBudget:
    """The CPU seconds one image may take to decode, and the wall-clock time the invocation has left.

    CPU time of the decoding thread, not wall time: waiting for S3 to deliver bytes, or sharing a
    throttled vCPU, says nothing about the image. Pillow decodes in the calling thread.
    """

    def __init__(self, cpu_seconds: float, wall_deadline: float | None = None) -> None:
        self.cpu_seconds = cpu_seconds
        self._cpu_end = time.thread_time() + cpu_seconds
        #: ``time.monotonic()`` value after which the invocation must stop starting work, or None.
        self.wall_deadline = wall_deadline

    def check(self) -> None:
        if self.wall_deadline is not None and time.monotonic() > self.wall_deadline:
            raise InvocationTimeoutError(
                "the invocation ran out of time while decoding; the event will be retried"
            )
        if time.thread_time() > self._cpu_end:
            raise ImageTooComplexError(
                f"decoding used more than {self.cpu_seconds:g} s of CPU; the image is too complex"
            )


class BudgetedReader(io.RawIOBase):
    """A view of a seekable binary stream that checks a :class:`DecodeBudget` on every read.

    Pillow reads its input block by block (64 KB) between decoder calls, so a decode that runs too long is
    stopped at the next block. Closing the view does not close the stream: it belongs to the caller, who
    still drains it so the SDK can check length and checksum.
    """

    def __init__(self, stream: Any, budget: DecodeBudget | None) -> None:
        super().__init__()
        self._stream = stream
        self._budget = budget

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._budget is not None:
            self._budget.check()
        return bytes(self._stream.read(-1 if size is None else size) or b"")

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._budget is not None:
            self._budget.check()
        return int(self._stream.readinto(buffer) or 0)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._stream.seek(offset, whence))

    def tell(self) -> int:
        return int(self._stream.tell())


def count_sos_markers(fp: Any, chunk: int = _CHUNK) -> int:
    """SOS markers in the whole file, read in blocks of ``chunk`` bytes; the position is restored.

    An upper bound on the scans: outside entropy-coded data 0xFFDA is only an SOS marker, and inside it the
    encoder stuffs every 0xFF with 0x00. Metadata (an EXIF thumbnail, an MPO's other images) can only add.
    """
    position = fp.tell()
    fp.seek(0)
    count, tail = 0, b""
    while block := fp.read(chunk):
        count += (tail + block[:1]).count(_SOS) + block.count(_SOS)
        tail = block[-1:]
    fp.seek(position)
    return count


def check_structure(image: ImageFile.ImageFile) -> None:
    """Refuse a layout that would make the decoder allocate or loop beyond what the image's size needs."""
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        # Progressive only: libjpeg must hold every scan before it outputs a line, so reading the file
        # whole first delays nothing; a baseline JPEG (decoded as it streams) stops after its one scan.
        scans = count_sos_markers(image.fp)
        if scans > MAX_JPEG_SCANS:
            raise ImageTooComplexError(
                f"the progressive JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are decoded"
            )
    elif image.format == "TIFF":
        _check_tiff_layout(image)


def _check_tiff_layout(image: ImageFile.ImageFile) -> None:
    tags = image.tag_v2  # type: ignore[attr-defined]
    width, height = image.size
    planes = int(tags.get(_SAMPLES_PER_PIXEL, 1)) if tags.get(_PLANAR_CONFIGURATION, 1) == 2 else 1
    if _TILE_OFFSETS in tags:
        tile_w, tile_h = tags.get(_TILE_WIDTH), tags.get(_TILE_LENGTH)
        if not isinstance(tile_w, int) or not isinstance(tile_h, int) or tile_w <= 0 or tile_h <= 0:
            raise CorruptImageError("the TIFF's tile size is missing or invalid")
        # Tiles overhang the image by less than one tile; one larger than the (rounded-up) image is a lie
        # that only makes libtiff allocate it. Small images may still use the common 256–1024 tiles.
        allowed = max(_round_up(width, 16) * _round_up(height, 16), MIN_TILE_PIXELS_ALLOWED)
        if tile_w * tile_h > allowed:
            raise CorruptImageError(f"the TIFF declares {tile_w}x{tile_h} tiles for a {width}x{height} image")
        expected = math.ceil(width / tile_w) * math.ceil(height / tile_h) * planes
        declared, unit = len(_as_tuple(tags[_TILE_OFFSETS])), "tiles"
    elif _STRIP_OFFSETS in tags:
        rows = tags.get(_ROWS_PER_STRIP, height)
        rows = min(rows, height) if isinstance(rows, int) and rows > 0 else height
        expected = math.ceil(height / rows) * planes
        declared, unit = len(_as_tuple(tags[_STRIP_OFFSETS])), "strips"
    else:
        return  # Pillow itself refuses a TIFF with neither
    if declared > expected:
        raise CorruptImageError(f"the TIFF declares {declared} {unit} where its size needs {expected}")


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple

"""How much one uploaded image may cost to read and decode: the upload stage's own limits.

Cheap on purpose (no Pillow): :mod:`clip_classifier.settings` takes its defaults from here, and the zip
functions import settings. The template's ``MaxImageBytes`` / ``MaxImagePixels`` parameters default to the
same values.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
#: CPU seconds one image may take to decode: the slowest valid image at the limits takes about 3.3 s
#: (``bench/decode_limits.py``); the function's timeout is 60 s.
DEFAULT_MAX_DECODE_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    #: CPU seconds one image may take from header to tensor (see :class:`~.decode_guards.DecodeBudget`).
    max_decode_seconds: float = DEFAULT_MAX_DECODE_SECONDS

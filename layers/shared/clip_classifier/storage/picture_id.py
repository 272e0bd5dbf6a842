"""The documented rule that turns an S3 object key into a ``pictureId``.

1. Remove the configured key prefix (``KEY_PREFIX``, e.g. ``uploads/``).
2. If what remains is a valid API ``pictureId`` (1–200 characters of letters, digits and
   ``._~:@!$&'()*+,;=-``, starting with a letter or digit) it is the ``pictureId``:
   ``uploads/IMG_0042.jpg`` → ``IMG_0042.jpg``.
3. Otherwise (sub-folders, spaces, non-ASCII, over 200 characters) the ``pictureId`` is ``key-`` followed by
   the first 40 hex digits of the SHA-256 of the full key: ``uploads/été 1.jpg`` →
   ``key-3f1c…``. The item keeps the full key in ``source.key``.

Deterministic, collision-free in practice, and always usable in ``GET /v1/classifications/{pictureId}``.
"""

from __future__ import annotations

import hashlib
import re

#: What a ``pictureId`` may be: printable, no slash (it is a URL path segment), at most 200 characters. The
#: API's request models take it from here.
PICTURE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~:@!$&'()*+,;=-]{0,199}$"

_VALID = re.compile(PICTURE_ID_PATTERN)


def picture_id_for_key(key: str, prefix: str = "") -> str:
    relative = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    if _VALID.fullmatch(relative) and not relative.startswith("key-"):
        return relative
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]

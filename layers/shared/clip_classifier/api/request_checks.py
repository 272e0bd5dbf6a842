"""What a request body must be before it is parsed: no larger than the limit in bytes, JSON by media type,
and text. Each refusal is a :class:`~clip_classifier.exceptions.ClassifierError` the API maps to its status
(413, 415, 400) in the same place as every other error.
"""

from __future__ import annotations

import base64
import binascii

from clip_classifier.exceptions import BodyTooLargeError, MalformedBodyError, UnsupportedMediaTypeError

JSON_MEDIA_TYPE = "application/json"


def body_bytes(body: str | None, *, is_base64: bool) -> int:
    """The body's size in bytes as the client sent it (a character count undercounts UTF-8)."""
    body = body or ""
    if is_base64:
        return len(body) * 3 // 4 - body[-2:].count("=")
    return len(body.encode("utf-8", errors="surrogatepass"))


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON: absent (JSON is assumed), or ``application/json`` in any case,
    with any parameters (``Application/JSON; charset=UTF-8``)."""
    if not content_type:
        return True
    return content_type.split(";")[0].strip().lower() == JSON_MEDIA_TYPE


def check_body(body: str | None, *, is_base64: bool, content_type: str | None, limit: int) -> None:
    """Refuse a body over ``limit`` bytes, of another media type, or not UTF-8 text, in that order."""
    size = body_bytes(body, is_base64=is_base64)
    if size > limit:
        raise BodyTooLargeError(f"body is {size} bytes; the limit is {limit}")
    if not is_json(content_type):
        raise UnsupportedMediaTypeError("send the body as application/json")
    if is_base64:  # API Gateway passes binary bodies base64-encoded: they must decode to UTF-8 text
        try:
            base64.b64decode(body or "").decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise MalformedBodyError("the request body is not valid UTF-8 JSON") from exc

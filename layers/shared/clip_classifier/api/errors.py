"""Turn request-validation errors into messages that name the field and the problem."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from clip_classifier.api.models import ErrorDetail

#: The fields a request body may have (a misspelt one is named, with the nearest of these).
KNOWN_FIELDS = ("features", "items", "pictureId")
_PHRASES = {
    "finite_number": "is not a finite number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_pattern_mismatch": "has characters that are not allowed (letters, digits and ._~:@!$&'()*+,;=- "
    "only, starting with a letter or digit)",
}


def field_path(loc: Iterable[Any]) -> str:
    """``('body', 'items', 3, 'features', 17)`` → ``items[3].features[17]``."""
    out = ""
    for part in loc:
        if part in ("body", "path", "query", "header"):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def describe_validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[ErrorDetail]:
    details: list[ErrorDetail] = []
    for err in errors:
        field = field_path(err.get("loc", ()))
        kind = str(err.get("type", ""))
        ctx = err.get("ctx") or {}
        if kind in ("too_short", "too_long"):
            bound = "at least" if kind == "too_short" else "at most"
            limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
            noun = "characters" if "string" in str(err.get("msg", "")) else "entries"
            message = f"{field} must have {bound} {limit} {noun}, got {ctx.get('actual_length', '?')}"
        elif kind in ("string_too_short", "string_too_long"):
            bound = "at least" if kind == "string_too_short" else "at most"
            limit = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
            message = f"{field} must have {bound} {limit} characters"
        elif kind == "value_error":
            message = str(err.get("msg", "")).removeprefix("Value error, ")
        elif kind == "extra_forbidden":
            name = field.rsplit(".", 1)[-1]
            close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1, cutoff=0.6)
            message = f"{field} {_PHRASES[kind]}" + (f" (did you mean '{close[0]}'?)" if close else "")
        elif kind in _PHRASES:
            message = f"{field} {_PHRASES[kind]}"
        else:
            message = f"{field}: {err.get('msg', 'is invalid')}"
        details.append(ErrorDetail(field=field, message=message))
    return details or [ErrorDetail(field="body", message="the request body is invalid")]

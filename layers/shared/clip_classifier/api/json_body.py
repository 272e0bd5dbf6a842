"""Bounded JSON parsing of API request bodies.

The standard parser has three unbounded corners a client can reach: nesting deep enough to exhaust the
recursion limit (``RecursionError``), integers longer than Python's 4,300-digit conversion limit
(``ValueError``), and numbers beyond the float64 range, which silently become infinity. Each becomes a
:class:`MalformedBodyError` (400) that says which; plain syntax errors stay ``json.JSONDecodeError``, which
the API reports as ``malformed_json`` too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from clip_classifier.exceptions import MalformedBodyError

#: Integer literals longer than this are read as floats (features are floats; no exact big ints needed).
MAX_INT_DIGITS = 20


def _number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
        raise MalformedBodyError(f"the number {shown} is beyond the 64-bit float range (±1.8e308)")
    return value


def _integer(text: str) -> int | float:
    return int(text) if len(text) <= MAX_INT_DIGITS else _number(text)


def parse_json_body(text: str | bytes) -> Any:
    """``json.loads`` with bounded nesting and number sizes (Powertools' ``json_body_deserializer``)."""
    try:
        return json.loads(text, parse_int=_integer, parse_float=_number)
    except json.JSONDecodeError:
        raise
    except RecursionError as exc:
        raise MalformedBodyError("the request body is nested too deeply") from exc
    except ValueError as exc:  # anything else the parser refuses, e.g. a decoding problem
        raise MalformedBodyError(f"the request body cannot be parsed: {exc}") from exc
